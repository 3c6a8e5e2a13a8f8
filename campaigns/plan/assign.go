package plan

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"math"
	"slices"
	"strings"
)

// Sizes is the number of devices of each wave for a fleet of n devices. A wave's cumulative
// target is its Count, or Percent of n rounded up (so a canary of 1% gets a device as soon as
// there is one); targets never shrink (a target below the previous wave's leaves the wave empty)
// and never exceed n, and the last wave takes everyone left.
func Sizes(n int, p Plan) []int {
	sizes := make([]int, len(p.Waves))
	covered := 0
	for i, w := range p.Waves {
		target := w.Count
		if w.Count == 0 {
			// The small slack absorbs binary rounding (n × 20 / 100 may come out as 100.0000001).
			target = int(math.Ceil(float64(n)*w.Percent/100 - 1e-9))
		}
		if i == len(p.Waves)-1 {
			target = n
		}
		target = min(max(target, covered), n)
		sizes[i] = target - covered
		covered = target
	}
	return sizes
}

// Assign splits endpoints into the plan's waves. The split depends only on the set of endpoints,
// their labels, the plan and seed (use the campaign ID): not on the input order and not on when
// it runs, so a restarted lwota computes the same waves. Duplicates count once.
//
// Without SpreadBy, devices are ordered by SHA-256(seed, endpoint) and the waves take
// consecutive runs of that order. With SpreadBy, devices are grouped by the label's value
// (devices without the label form one more group); the k-th device (by hash) of a group of
// size m is placed at (k+½)/m, and the order merges all groups by that position, so every
// prefix of it, and therefore every wave, holds each group in proportion to its size, within one
// device. labels may be nil when SpreadBy is empty.
func Assign(endpoints []string, labels func(ep string) map[string]string, p Plan, seed string) [][]string {
	type dev struct {
		ep       string
		hash     [32]byte
		group    string
		rank, of int // k and m above
	}
	// Duplicates are dropped once sorted, where they are neighbours (the same endpoint has the
	// same hash and group): a set of the endpoints seen was a third of what Assign allocated.
	devs := make([]dev, 0, len(endpoints))
	for _, ep := range endpoints {
		d := dev{ep: ep, hash: hashOf(seed, ep)}
		if p.SpreadBy != "" && labels != nil {
			if v, ok := labels(ep)[p.SpreadBy]; ok {
				d.group = "=" + v // "" stays free for devices without the label
			}
		}
		devs = append(devs, d)
	}
	byHash := func(a, b dev) int {
		if c := bytes.Compare(a.hash[:], b.hash[:]); c != 0 {
			return c
		}
		return strings.Compare(a.ep, b.ep)
	}
	same := func(a, b dev) bool { return a.ep == b.ep }
	if p.SpreadBy != "" {
		slices.SortFunc(devs, func(a, b dev) int {
			if c := strings.Compare(a.group, b.group); c != 0 {
				return c
			}
			return byHash(a, b)
		})
		devs = slices.CompactFunc(devs, same)
		for i := 0; i < len(devs); {
			j := i
			for j < len(devs) && devs[j].group == devs[i].group {
				j++
			}
			for k := i; k < j; k++ {
				devs[k].rank, devs[k].of = k-i, j-i
			}
			i = j
		}
		// (2a+1)/2m vs (2b+1)/2n compared exactly in integers: no float ties to break by luck.
		slices.SortFunc(devs, func(a, b dev) int {
			l, r := int64(2*a.rank+1)*int64(b.of), int64(2*b.rank+1)*int64(a.of)
			if c := cmp.Compare(l, r); c != 0 {
				return c
			}
			return byHash(a, b)
		})
	} else {
		slices.SortFunc(devs, byHash)
		devs = slices.CompactFunc(devs, same)
	}
	waves := make([][]string, len(p.Waves))
	at := 0
	for i, n := range Sizes(len(devs), p) {
		waves[i] = make([]string, 0, n)
		for _, d := range devs[at : at+n] {
			waves[i] = append(waves[i], d.ep)
		}
		at += n
	}
	return waves
}

// hashOf separates seed and endpoint with a zero byte, so that ("ab", "c") and ("a", "bc")
// hash differently.
func hashOf(seed, ep string) [32]byte {
	h := sha256.New()
	h.Write([]byte(seed))
	h.Write([]byte{0})
	h.Write([]byte(ep))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
