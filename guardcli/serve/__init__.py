"""``guardcli serve``: the guard as a local HTTP service (OpenAI moderation shape and a native
``/v1/guard``), one model in memory, requests gathered into engine batches. Starlette and
uvicorn come from the ``serve`` extra and are imported only when a server is built."""
