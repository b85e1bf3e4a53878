"""Audio I/O beside the network: decode and encode (ffmpeg, libsndfile), whole or in blocks, the input
limits, and the MUSDB18 layouts. Nothing here imports TensorFlow, Beam, argparse or a cloud SDK.
"""
