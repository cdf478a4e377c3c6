"""`derain-demo`: the whole stack end to end on built-in data (a sibling of train/export/runtime that uses them
all; see `derain.demo.cli`)."""
