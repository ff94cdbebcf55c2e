"""Model bundles: the manifest and its hashes, which bundle to run and opening it, where they
live on disk, and building the embedded default (nano) from its parts."""
