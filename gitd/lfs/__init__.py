"""Git LFS: pointers, the batch and locks APIs, and object storage backends."""
