"""Generators of synthetic files in the exact official formats (FLAME, DECA, EMOCA, SMIRK,
emotion regressor): same keys, dtypes, shapes and pickling, random values."""
