// tlogcheck: checks the JSON proofs `provledger prove` prints, one per line on
// stdin, with Go's golang.org/x/mod/sumdb/tlog (RFC 6962/9162 hashing), an
// implementation independent of libprovledger.
//
// Exit 0 when every proof verifies, 1 otherwise.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

type proof struct {
	LeafIndex *int64   `json:"leaf_index"`
	TreeSize  int64    `json:"tree_size"`
	LeafHash  string   `json:"leaf_hash"`
	RootHash  string   `json:"root_hash"`
	FromSize  int64    `json:"from_size"`
	ToSize    int64    `json:"to_size"`
	FromRoot  string   `json:"from_root"`
	ToRoot    string   `json:"to_root"`
	Proof     []string `json:"proof"`
}

func hash(s string) (h tlog.Hash, err error) {
	b, err := hex.DecodeString(s)
	if err == nil && len(b) != len(h) {
		err = fmt.Errorf("%q is not a SHA-256 hash", s)
	}
	copy(h[:], b)
	return
}

func check(p proof) error {
	var hs []tlog.Hash
	for _, s := range p.Proof {
		h, err := hash(s)
		if err != nil {
			return err
		}
		hs = append(hs, h)
	}
	if p.LeafIndex != nil {
		root, err := hash(p.RootHash)
		if err != nil {
			return err
		}
		leaf, err := hash(p.LeafHash)
		if err != nil {
			return err
		}
		return tlog.CheckRecord(tlog.RecordProof(hs), p.TreeSize, root, *p.LeafIndex, leaf)
	}
	from, err := hash(p.FromRoot)
	if err != nil {
		return err
	}
	to, err := hash(p.ToRoot)
	if err != nil {
		return err
	}
	return tlog.CheckTree(tlog.TreeProof(hs), p.ToSize, to, p.FromSize, from)
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	ok, bad := 0, 0
	for sc.Scan() {
		var p proof
		err := json.Unmarshal(sc.Bytes(), &p)
		if err == nil {
			err = check(p)
		}
		if err != nil {
			fmt.Println("FAIL:", err, sc.Text())
			bad++
		} else {
			ok++
		}
	}
	fmt.Printf("tlogcheck: %d proofs verified, %d failed\n", ok, bad)
	if bad > 0 || ok == 0 {
		os.Exit(1)
	}
}
