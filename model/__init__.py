"""Pure model code: config, DSP, the U-Net, TFRecord schema and the chunked separator.

Nothing here imports Beam, argparse, a cloud SDK or matplotlib.
"""
