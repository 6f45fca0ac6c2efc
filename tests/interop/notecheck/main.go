// notecheck: verifies C2SP signed notes with Go's golang.org/x/mod/sumdb/note,
// an implementation independent of libprovledger.
//
// Usage: notecheck VERIFIER-KEY NOTE-FILE...   (exit 0 when every note verifies)
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	v, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fmt.Println("verifier key:", err)
		os.Exit(2)
	}
	bad := 0
	for _, f := range os.Args[2:] {
		msg, err := os.ReadFile(f)
		if err == nil {
			_, err = note.Open(msg, note.VerifierList(v))
		}
		if err != nil {
			fmt.Println(f+":", err)
			bad++
		}
	}
	fmt.Printf("notecheck: %d notes, %d did not verify\n", len(os.Args)-2, bad)
	if bad > 0 {
		os.Exit(1)
	}
}
