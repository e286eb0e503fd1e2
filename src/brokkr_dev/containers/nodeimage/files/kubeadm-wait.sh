#!/bin/sh
# kind runs kubeadm as soon as the node container is up; the control-plane images
# are imported into containerd at boot (brokkr-import-images.service), and kubeadm
# must not look for them before that, or it tries a registry this node cannot reach.
deadline=$(( $(date +%s) + 300 ))
while [ ! -e /run/brokkr-images-imported ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "brokkr: node images were not imported within 300 s (journalctl -u brokkr-import-images)" >&2
    exit 1
  fi
  sleep 0.5
done
exec /usr/lib/brokkr/kubeadm "$@"
