// Package mcuboot reads MCUboot image headers and trailers (magic, version, SHA-256 and signature
// TLVs) from a stream, so an upload's embedded version and digest are checked without buffering.
package mcuboot

// Info is what an MCUboot image says about itself.
type Info struct {
	Version       string   `json:"version"` // "major.minor.revision+build"
	HeaderSize    uint16   `json:"header_size"`
	ImageSize     uint32   `json:"image_size"`
	LoadAddr      uint32   `json:"load_addr"`
	Flags         uint32   `json:"flags"`
	HashVerified  bool     `json:"hash_verified"`            // the SHA-256 TLV matched header+body
	SignatureTLVs []string `json:"signature_tlvs,omitempty"` // e.g. "ECDSA-P256", "ED25519": reported, not verified
}
