"""The Hugging Face Hub face (issue 11): huggingface_hub, the `hf` command line and
gradio_client work against Demohub with only the endpoint changed
(`HF_ENDPOINT=http://<hub>/hf`).

Owns the URLs under /hf (spaces/hf_urls.py), the shapes Hugging Face's clients read (JSON
bodies, `X-Error-Code` on errors, `Link` paging, `X-Repo-Commit`/`ETag` on downloads, the
preupload and NDJSON commit protocol) and nothing else: every call goes through the one access
check (access.viewer.get_space) and the same services as Demohub's own /api/, which does not
change. No models, no tasks.

May call: records, web, accounts, access, repos (commits and reads), lifecycle, builds,
community, catalog.
"""
