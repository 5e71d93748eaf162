# Lets pytest import gitd_example_plugin from this folder without installing it first
# (pytest puts the folder of a conftest.py on sys.path).
