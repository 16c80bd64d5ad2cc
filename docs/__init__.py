"""Documentation, and the script that draws its import graph (``python -m docs.import_graph``)."""
