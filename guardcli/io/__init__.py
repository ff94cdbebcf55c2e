"""Files in and out: walking and decoding inputs, reading them as Samples, writing result
records, output files (refuse, resume, open) and making untrusted text safe on a terminal."""
