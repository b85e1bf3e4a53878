"""Audio-Track Separator: the `atsep` command and the synthetic song generator."""
