"""VOC2012 semantic segmentation transfer with BYOL's FCN (App. D.4; PROTOCOLS.md s.6)."""
