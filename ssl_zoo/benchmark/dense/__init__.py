"""Parts shared by the dense transfer tasks (segmentation, depth): feature-map backbones, the fine-tuning loop."""
