// Command etcd is etcd's server, built from the module proxy at the version that
// go.mod pins (tools.toml [etcd]) because Debian's etcd is older than Kubernetes needs.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
