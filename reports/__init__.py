"""Static HTML reports of separation runs, evaluations and training runs.

Pure rendering: no Beam, no TensorFlow, no network. Every page is one self-contained file (inline CSS,
inline SVG charts, no scripts) whose links are relative, so an output folder can be opened from local
disk or served as it is from object storage.
"""
