"""The SSH transport: git and git-lfs over asyncssh, public-key auth only."""
