"""Short names of attribution methods, shared by :func:`canonical_name` and the noise tunnels'
``base=``."""

ALIASES = {
    "grad": "gradient",
    "ixg": "gradient_x_input",
    "input_x_gradient": "gradient_x_input",
    "gxi": "gradient_x_input",
    "ig": "integrated_gradients",
    "layer_ig": "layer_integrated_gradients",
    "lig": "layer_integrated_gradients",
    "lgxa": "layer_gradient_x_activation",
    "attn_lrp": "attnlrp",
    "transformer_attribution": "gae",
    "mgae": "mask_lrp",
    "attention_rollout": "rollout",
    "layer_saliency": "decoded_layer_saliency",
}
