"""Temporal heads on sliding-window features: TIM and ActionFormer behind one plug-in contract.

`ndar.heads.base` holds the contract (`FeatureVideo`, `HeadOutput`, the `HEADS` registry),
`ndar.heads.data` loads feature files (`ndar.formats.features`) into `FeatureVideo`s,
`ndar.heads.runner` runs the k-fold loop and writes a prediction source (`ndar.formats.predictions`). Nothing runs on import.
"""
