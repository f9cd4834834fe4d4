"""Assets shared by the demo world and training: real photographs bundled in installed wheels.

Why a package of its own: the photo bank (and its two disjoint halves) is used by the demo world
(shoppers' photos on the query half) and by training (products pasted on the training half).
Neither should import the other, so the bank lives below both. Importing this package loads
nothing: the photos are read on first use (:func:`vsearch.assets.photos.photo_bank`).
"""
