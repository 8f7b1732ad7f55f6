"""Dataset layer: readers for every layout, safe image decoding, inspection and honest splits."""
