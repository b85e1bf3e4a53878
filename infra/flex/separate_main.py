"""FLEX_TEMPLATE_PYTHON_PY_FILE of the separate template (see launcher.py)."""
from infra.flex.launcher import launch

if __name__ == "__main__":
    launch("separate")
