"""Each space's git repository (contract-git.md). The read side, reading.py, reads trees,
files, commits and diffs for the pages, the API and the Hugging Face face.

May call: records, web, accounts, access, runner.
"""
