package fwupdate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lwota/lwota/server/lwm2m"
)

// Object 5 (Firmware Update) resources the driver uses (LwM2M Core appendix E.6).
var (
	pathObject5     = lwm2m.NewPath(5, 0)
	pathPackage     = lwm2m.NewPath(5, 0, 0)
	pathPackageURI  = lwm2m.NewPath(5, 0, 1)
	pathUpdate      = lwm2m.NewPath(5, 0, 2)
	pathState       = lwm2m.NewPath(5, 0, 3)
	pathResult      = lwm2m.NewPath(5, 0, 5)
	pathCancel      = lwm2m.NewPath(5, 0, 10)
	pathFirmwareVer = lwm2m.NewPath(3, 0, 3)
	contentOctets   = lwm2m.ContentFormat(42) // application/octet-stream, for a push
)

// Object 5 State (/5/0/3) values.
const (
	deviceIdle        = 0
	deviceDownloading = 1
	deviceDownloaded  = 2
	deviceUpdating    = 3
)

// StateText names an Object 5 State value for people ("downloading"); "" for Unknown.
func StateText(s int) string {
	switch s {
	case deviceIdle:
		return "idle"
	case deviceDownloading:
		return "downloading"
	case deviceDownloaded:
		return "downloaded"
	case deviceUpdating:
		return "updating"
	case Unknown:
		return ""
	}
	return fmt.Sprintf("state %d", s)
}

// Firmware Update Protocol Support (/5/0/8) values, and the delivery each one is.
var protocolDelivery = map[int]string{0: DeliveryCoAP, 1: DeliveryCoAPS, 2: DeliveryHTTP, 3: DeliveryHTTPS,
	4: DeliveryCoAPTCP, 5: DeliveryCoAPTLS}

func deliveryProtocol(delivery string) (int, bool) {
	for p, d := range protocolDelivery {
		if d == delivery {
			return p, true
		}
	}
	return 0, false
}

// Firmware Update Delivery Method (/5/0/9) values.
const (
	methodPullOnly = 0
	methodPushOnly = 1
	methodBoth     = 2
)

// object5 is what one read of /5/0 told about the device.
type object5 struct {
	State, Result  int    // Unknown when absent
	PackageURI     string // /5/0/1
	PkgVersion     string // /5/0/7
	Protocols      []int  // /5/0/8; nil when the device does not declare it
	DeliveryMethod int    // /5/0/9; Unknown when absent
}

// parseObject5 reads the records of a Read of /5/0.
func parseObject5(recs []lwm2m.Record) object5 {
	o := object5{State: Unknown, Result: Unknown, DeliveryMethod: Unknown}
	for _, r := range recs {
		if r.Path.Len() < 3 || r.Path.ObjectID() != 5 {
			continue
		}
		switch r.Path.ResourceID() {
		case 1:
			o.PackageURI = r.Value.Str
		case 3:
			o.State = intValue(r.Value)
		case 5:
			o.Result = intValue(r.Value)
		case 7:
			o.PkgVersion = r.Value.Str
		case 8:
			if p := intValue(r.Value); p != Unknown && !slices.Contains(o.Protocols, p) {
				o.Protocols = append(o.Protocols, p)
			}
		case 9:
			o.DeliveryMethod = intValue(r.Value)
		}
	}
	return o
}

// intValue is an integer resource value whatever the codec typed it as; Unknown otherwise.
func intValue(v lwm2m.Value) int {
	switch v.Type {
	case lwm2m.TypeInteger:
		return int(v.Int)
	case lwm2m.TypeUnsignedInteger:
		return int(v.Uint)
	case lwm2m.TypeFloat:
		return int(v.Float)
	case lwm2m.TypeString:
		var n int
		if _, err := fmt.Sscan(v.Str, &n); err == nil {
			return n
		}
	}
	return Unknown
}

// chooseDelivery picks how this attempt delivers the package. offered are the pull deliveries
// lwota can serve this device, most preferred first; tried are the protocols that already
// failed with "unsupported protocol" (result 9). A device that does not declare /5/0/8 is taken
// to speak CoAP (and CoAPS over DTLS), the protocols every Object 5 client implements; one
// that does not declare /5/0/9 takes both pull and push.
func chooseDelivery(method string, o object5, offered []string, tried []int) (string, error) {
	protocols := o.Protocols
	if protocols == nil {
		protocols = []int{0, 1}
	}
	canPull := o.DeliveryMethod != methodPushOnly
	canPush := o.DeliveryMethod != methodPullOnly
	pull := ""
	for _, d := range offered {
		p, ok := deliveryProtocol(d)
		if ok && slices.Contains(protocols, p) && !slices.Contains(tried, p) {
			pull = d
			break
		}
	}
	switch {
	case method == MethodPull && !canPull:
		return "", fmt.Errorf("method pull, but the device accepts push only (/5/0/9 = %d)", methodPushOnly)
	case method == MethodPush && !canPush:
		return "", fmt.Errorf("method push, but the device accepts pull only (/5/0/9 = %d)", methodPullOnly)
	case method == MethodPush && canPush:
		return DeliveryPush, nil
	case method != MethodPush && canPull && pull != "":
		return pull, nil
	case method == MethodAuto && canPush:
		return DeliveryPush, nil
	}
	return "", fmt.Errorf("no common way to deliver (method %s): the device supports %s with protocols %v; lwota offers %s",
		method, deliveryMethodText(o.DeliveryMethod), protocols, strings.Join(offered, ", "))
}

func deliveryMethodText(m int) string {
	switch m {
	case methodPullOnly:
		return "pull only"
	case methodPushOnly:
		return "push only"
	}
	return "pull and push"
}

// atLeast11 reports whether an Object 5 version ("1.0", "1.1", "1.2", "" for 1.0) has the
// Cancel resource /5/0/10.
func atLeast11(version string) bool {
	return version != "" && version != "1.0" && version != "1"
}

// stringAt is the string value of path among recs, "" when absent.
func stringAt(recs []lwm2m.Record, path lwm2m.Path) string {
	for _, r := range recs {
		if r.Path == path {
			return r.Value.Str
		}
	}
	return ""
}
