"""Small utilities every layer may use: progress bars and file access (local paths and gs://).

The ground floor beside model/ and audio/: imports nothing from the project's other packages.
"""
