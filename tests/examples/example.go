// scopefs from Go: register, adopt, set rules, a refusal, release.
// Run: go run example.go [MOUNT]   (or SCOPEFS_MOUNT=MOUNT)
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func get(path string) string {
	b, err := os.ReadFile(path)
	must(err)
	return strings.TrimSpace(string(b))
}

func main() {
	mnt := "/run/scopes"
	if len(os.Args) > 1 {
		mnt = os.Args[1]
	} else if env := os.Getenv("SCOPEFS_MOUNT"); env != "" {
		mnt = env
	}
	pod := filepath.Join(mnt, "worker")

	must(os.Mkdir(pod, 0755)) // registers worker, owned by this process
	must(os.WriteFile(pod+"/pid", []byte(fmt.Sprintf("%d\n", os.Getpid())), 0644)) // adopts
	must(os.WriteFile(pod+"/allow", []byte("write recursive /srv/proj/src\nread recursive /srv/proj\n"), 0644))
	fmt.Printf("worker: pid %s, session %s\n", get(pod+"/pid"), get(pod+"/session"))
	fmt.Println(get(pod + "/allow"))

	rival := filepath.Join(mnt, "rival")
	must(os.Mkdir(rival, 0755))
	err := os.WriteFile(rival+"/allow", []byte("write recursive /srv/proj/src/lib\n"), 0644)
	if errors.Is(err, syscall.EBUSY) { // worker holds that scope
		fmt.Println("rival refused: EBUSY")
	} else {
		must(err)
	}

	must(os.Remove(rival)) // rmdir: releases
	must(os.Remove(pod))
	fmt.Println("released")
}
