"""Front doors other than chat: each parses a client API into the internal (OpenAI chat) request and
renders the internal answer, stream and errors back in that API's own shape. The pipeline behind
them is the chat pipeline; no door keeps a copy of a stage."""
