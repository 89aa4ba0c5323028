"""The pipeline: finetune as named phases, config resolution (once), exports."""
