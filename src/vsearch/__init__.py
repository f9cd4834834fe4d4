"""vsearch: visual product search (detection + click-trained embedding + binary index)."""

__version__ = "0.1.0"
