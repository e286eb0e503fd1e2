"""Containers: the engine that runs them and the builders that make images.

- `engine/`: the Docker engine kind runs on (found, or started by us);
- `podman`, `podman_storage`, `buildx`: the image builders and their host set-up;
- `baseimages`, `images`, `postgres_image`: what we build;
- `nodeimage/`: the kind node image, built offline;
- `userns`: a normal user as root of its files, in a user namespace (image root
  file systems).
"""
