"""Operations around the served model: the stream client, the auth proxy in front of
TorchServe, and the bearer tokens both use. Needs the ``[ops]`` extra (requests,
prometheus-client)."""
