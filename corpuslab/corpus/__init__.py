"""The corpus before curation: train/val/test split and canary documents."""
