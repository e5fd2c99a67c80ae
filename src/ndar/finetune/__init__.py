"""Fine-tuning of a VideoMAE-style ViT on the clips of one camera view (DeepSpeed).

`ndar.finetune.engine.run(FinetuneConfig) -> Path` is the entry point; `python -m ndar finetune`
(`ndar.finetune.cli`) loads the config from YAML with dotted overrides. Nothing runs on import.
"""
