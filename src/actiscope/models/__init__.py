"""Architectures behind one interface.

`entry` (the types an architecture registers) <- `image` <- `video` <- `registry` (names to entries,
`create_model`) <- `weights` (pretrained weights, found through `store`). This file imports none of
them: import the module you need.
"""
