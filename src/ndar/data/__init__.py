"""Dataset parsing: label CSVs, discovery of A1/A2 folders, folds, clip samples, `check-data`, `prepare`.

Import the submodules directly (`ndar.data.discover`, `ndar.data.labels`, ...); nothing runs on import.
"""
