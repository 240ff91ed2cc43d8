"""``python -m jaxplain ...`` runs the ``jaxplain`` command line."""

from jaxplain.cli import main

if __name__ == "__main__":
  main()
