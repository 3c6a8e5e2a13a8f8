// Package apitoken is lwota's API bearer tokens: the roles they carry, how a secret is made,
// shown once and kept only as a hash, and how a presented secret is checked.
package apitoken
