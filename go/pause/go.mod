module brokkr.dev/go/pause

go 1.22
