"""Fine-tuning: class samplers, specialist head re-training, VLM LoRA and instruction-data export."""
