package lwm2m

import "strconv"

// The built-in definitions, written from the OMA LwM2M registry (github.com/OpenMobileAlliance/
// lwm2m-registry: N.xml and version_history/N-x_y.xml) and the Firmware Update README of
// the OMA release. Each object's first version is spelled out in full; later versions list
// only the items they add or change, so a reader sees exactly what each version brought.
//
// Versions the registry lists but that are not built in (their files were not available to
// check): Device 1.3 and Firmware Update 1.2. A deployment that needs them drops the
// registry's 3.xml / 5.xml into the DDF folder; they then become the newest versions.

// rflags are a DDF item's MultipleInstances and Mandatory columns.
type rflags uint8

const (
	single    rflags = 0      // MultipleInstances: Single, Mandatory: Optional
	multiple  rflags = 1 << 0 // MultipleInstances: Multiple
	mandatory rflags = 1 << 1 // Mandatory: Mandatory
)

// Operation sets as the registry tables spell them; opNone is the Security object's
// bootstrap-only "" column.
const (
	opNone Operations = 0
	opR               = OpRead
	opW               = OpWrite
	opRW              = OpRead | OpWrite
	opE               = OpExecute
)

// item builds one resource definition in the registry's column order.
func item(id uint16, name string, ops Operations, f rflags, t Type, rangeEnum, units string) *ResourceDef {
	return &ResourceDef{
		ID:               id,
		Name:             name,
		Operations:       ops,
		Multiple:         f&multiple != 0,
		Mandatory:        f&mandatory != 0,
		Type:             t,
		RangeEnumeration: rangeEnum,
		Units:            units,
	}
}

// coreURN is the registry's URN for an OMA object: version 1.0 has no version suffix.
func coreURN(id uint16, version string) string {
	urn := "urn:oma:lwm2m:oma:" + strconv.Itoa(int(id))
	if version != "1.0" {
		urn += ":" + version
	}
	return urn
}

// object builds the first version of an object.
func object(id uint16, name, version, lwm2mVersion string, f rflags, items ...*ResourceDef) *ObjectDef {
	d := &ObjectDef{
		ID:           id,
		Name:         name,
		Version:      version,
		LwM2MVersion: lwm2mVersion,
		URN:          coreURN(id, version),
		Multiple:     f&multiple != 0,
		Mandatory:    f&mandatory != 0,
		Resources:    make(map[uint16]*ResourceDef, len(items)),
	}
	for _, it := range items {
		d.Resources[it.ID] = it
	}
	return d
}

// revise derives a later version from base: items replace base's items of the same id or
// are added.
func revise(base *ObjectDef, version, lwm2mVersion string, items ...*ResourceDef) *ObjectDef {
	d := base.clone()
	d.Version = version
	d.LwM2MVersion = lwm2mVersion
	d.URN = coreURN(d.ID, version)
	for _, it := range items {
		d.Resources[it.ID] = it
	}
	return d
}

// builtinObjects builds fresh copies of every built-in definition. It is a function, not a
// package variable, so that nothing runs at import time and no caller can alter the tables.
func builtinObjects() []*ObjectDef {
	var defs []*ObjectDef
	for _, f := range []func() []*ObjectDef{
		securityObjects,
		serverObjects,
		deviceObjects,
		connectivityMonitoringObjects,
		firmwareUpdateObjects,
		softwareManagementObjects,
		advancedFirmwareUpdateObjects,
	} {
		defs = append(defs, f()...)
	}
	return defs
}

// securityObjects: Object 0, LwM2M Security 1.0, 1.1, 1.2. No resource has operations: only a
// Bootstrap-Server writes them.
func securityObjects() []*ObjectDef {
	v10 := object(0, "LWM2M Security", "1.0", "1.0", multiple|mandatory,
		// The registry spells this "LWM2M  Server URI" (two spaces); the typo is not kept.
		item(0, "LWM2M Server URI", opNone, mandatory, TypeString, "0..255", ""),
		item(1, "Bootstrap-Server", opNone, mandatory, TypeBoolean, "", ""),
		item(2, "Security Mode", opNone, mandatory, TypeInteger, "0..4", ""),
		item(3, "Public Key or Identity", opNone, mandatory, TypeOpaque, "", ""),
		item(4, "Server Public Key", opNone, mandatory, TypeOpaque, "", ""),
		item(5, "Secret Key", opNone, mandatory, TypeOpaque, "", ""),
		item(6, "SMS Security Mode", opNone, single, TypeInteger, "0..255", ""),
		item(7, "SMS Binding Key Parameters", opNone, single, TypeOpaque, "6", ""),
		item(8, "SMS Binding Secret Key(s)", opNone, single, TypeOpaque, "16,32,48", ""),
		item(9, "LwM2M Server SMS Number", opNone, single, TypeString, "", ""),
		item(10, "Short Server ID", opNone, single, TypeInteger, "1..65534", ""),
		item(11, "Client Hold Off Time", opNone, single, TypeInteger, "", "s"),
		item(12, "Bootstrap-Server Account Timeout", opNone, single, TypeInteger, "", "s"),
	)
	// The 1.1 file gives Matching Type and Certificate Usage the unit "s", an evident
	// copy-paste slip that 1.2 dropped; it is not kept.
	v11 := revise(v10, "1.1", "1.1",
		item(13, "Matching Type", opNone, single, TypeUnsignedInteger, "0..3", ""),
		item(14, "SNI", opNone, single, TypeString, "", ""),
		item(15, "Certificate Usage", opNone, single, TypeInteger, "0..3", ""),
		item(16, "DTLS/TLS Ciphersuite", opNone, multiple, TypeInteger, "", ""),
		item(17, "OSCORE Security Mode", opNone, single, TypeObjlnk, "", ""),
	)
	// 1.2 makes Certificate Usage and the ciphersuites unsigned and adds TLS 1.3, MQTT, COSE
	// and 3GPP RDS (non-IP) resources. The registry's 1.2 file says LWM2MVersion 1.1.
	v12 := revise(v11, "1.2", "1.1",
		item(15, "Certificate Usage", opNone, single, TypeUnsignedInteger, "0..3", ""),
		item(16, "DTLS/TLS Ciphersuite", opNone, multiple, TypeUnsignedInteger, "", ""),
		item(18, "Groups To Use by Client", opNone, multiple, TypeUnsignedInteger, "0..65535", ""),
		item(19, "Signature Algorithms Supported by Server", opNone, multiple, TypeUnsignedInteger, "0..65535", ""),
		item(20, "Signature Algorithms To Use by Client", opNone, multiple, TypeUnsignedInteger, "0..65535", ""),
		item(21, "Signature Algorithm Certs Supported by Server", opNone, multiple, TypeUnsignedInteger, "0..65535", ""),
		item(22, "TLS 1.3 Features To Use by Client", opNone, single, TypeUnsignedInteger, "0..65535", ""),
		item(23, "TLS Extensions Supported by Server", opNone, single, TypeUnsignedInteger, "0..65535", ""),
		item(24, "TLS Extensions To Use by Client", opNone, single, TypeUnsignedInteger, "0..65535", ""),
		item(25, "Secondary LwM2M Server URI", opNone, multiple, TypeString, "0..255", ""),
		item(26, "MQTT Server", opNone, single, TypeObjlnk, "", ""),
		item(27, "LwM2M COSE Security", opNone, multiple, TypeObjlnk, "", ""),
		item(28, "RDS Destination Port", opNone, single, TypeInteger, "0..15", ""),
		item(29, "RDS Source Port", opNone, single, TypeInteger, "0..15", ""),
		item(30, "RDS Application ID", opNone, single, TypeString, "", ""),
	)
	return []*ObjectDef{v10, v11, v12}
}

// serverObjects: Object 1, LwM2M Server 1.0, 1.1, 1.2.
func serverObjects() []*ObjectDef {
	v10 := object(1, "LwM2M Server", "1.0", "1.0", multiple|mandatory,
		item(0, "Short Server ID", opR, mandatory, TypeInteger, "1..65534", ""),
		item(1, "Lifetime", opRW, mandatory, TypeInteger, "", "s"),
		item(2, "Default Minimum Period", opRW, single, TypeInteger, "", "s"),
		item(3, "Default Maximum Period", opRW, single, TypeInteger, "", "s"),
		item(4, "Disable", opE, single, TypeNone, "", ""),
		item(5, "Disable Timeout", opRW, single, TypeInteger, "", "s"),
		item(6, "Notification Storing When Disabled or Offline", opRW, mandatory, TypeBoolean, "", ""),
		item(7, "Binding", opRW, mandatory, TypeString, "", ""),
		item(8, "Registration Update Trigger", opE, mandatory, TypeNone, "", ""),
	)
	// In 1.1, resources 13 to 20 have no operations on purpose: only the Bootstrap-Server sets
	// them (OMA DMSE answer in lwm2m-registry issue 519).
	v11 := revise(v10, "1.1", "1.1",
		item(9, "Bootstrap-Request Trigger", opE, single, TypeNone, "", ""),
		item(10, "APN Link", opRW, single, TypeObjlnk, "", ""),
		item(11, "TLS-DTLS Alert Code", opR, single, TypeUnsignedInteger, "0..255", ""),
		item(12, "Last Bootstrapped", opR, single, TypeTime, "", ""),
		item(13, "Registration Priority Order", opNone, single, TypeUnsignedInteger, "", ""),
		item(14, "Initial Registration Delay Timer", opNone, single, TypeUnsignedInteger, "", "s"),
		item(15, "Registration Failure Block", opNone, single, TypeBoolean, "", ""),
		item(16, "Bootstrap on Registration Failure", opNone, single, TypeBoolean, "", ""),
		item(17, "Communication Retry Count", opNone, single, TypeUnsignedInteger, "", ""),
		item(18, "Communication Retry Timer", opNone, single, TypeUnsignedInteger, "", "s"),
		item(19, "Communication Sequence Delay Timer", opNone, single, TypeUnsignedInteger, "", ""),
		item(20, "Communication Sequence Retry Count", opNone, single, TypeUnsignedInteger, "", ""),
		item(21, "Trigger", opRW, single, TypeBoolean, "", ""),
		item(22, "Preferred Transport", opRW, single, TypeString, "", ""),
		item(23, "Mute Send", opRW, single, TypeBoolean, "", ""),
	)
	// 1.2 makes Lifetime unsigned, opens 13 to 20 to LwM2M Servers, and adds 24 to 27.
	v12 := revise(v11, "1.2", "1.2",
		item(1, "Lifetime", opRW, mandatory, TypeUnsignedInteger, "", "s"),
		item(13, "Registration Priority Order", opR, single, TypeUnsignedInteger, "", ""),
		item(14, "Initial Registration Delay Timer", opRW, single, TypeUnsignedInteger, "", "s"),
		item(15, "Registration Failure Block", opR, single, TypeBoolean, "", ""),
		item(16, "Bootstrap on Registration Failure", opR, single, TypeBoolean, "", ""),
		item(17, "Communication Retry Count", opRW, single, TypeUnsignedInteger, "", ""),
		item(18, "Communication Retry Timer", opRW, single, TypeUnsignedInteger, "", "s"),
		item(19, "Communication Sequence Delay Timer", opRW, single, TypeUnsignedInteger, "", "s"),
		item(20, "Communication Sequence Retry Count", opRW, single, TypeUnsignedInteger, "", ""),
		item(24, "Alternate APN Links", opRW, multiple, TypeObjlnk, "", ""),
		item(25, "Supported Server Versions", opRW, multiple, TypeString, "", ""),
		item(26, "Default Notification Mode", opRW, single, TypeInteger, "0..1", ""),
		item(27, "Profile ID Hash Algorithm", opRW, single, TypeUnsignedInteger, "0..255", ""),
	)
	return []*ObjectDef{v10, v11, v12}
}

// deviceObjects: Object 3, Device 1.0, 1.1, 1.2. All three define resources 0 to 22; they
// differ only in units and enumeration ranges.
func deviceObjects() []*ObjectDef {
	v10 := object(3, "Device", "1.0", "1.0", mandatory,
		item(0, "Manufacturer", opR, single, TypeString, "", ""),
		item(1, "Model Number", opR, single, TypeString, "", ""),
		item(2, "Serial Number", opR, single, TypeString, "", ""),
		item(3, "Firmware Version", opR, single, TypeString, "", ""),
		item(4, "Reboot", opE, mandatory, TypeNone, "", ""),
		item(5, "Factory Reset", opE, single, TypeNone, "", ""),
		item(6, "Available Power Sources", opR, multiple, TypeInteger, "0..7", ""),
		item(7, "Power Source Voltage", opR, multiple, TypeInteger, "", "mV"),
		item(8, "Power Source Current", opR, multiple, TypeInteger, "", "mA"),
		item(9, "Battery Level", opR, single, TypeInteger, "0..100", "%"),
		item(10, "Memory Free", opR, single, TypeInteger, "", "KB"),
		item(11, "Error Code", opR, multiple|mandatory, TypeInteger, "0..8", ""),
		item(12, "Reset Error Code", opE, single, TypeNone, "", ""),
		item(13, "Current Time", opRW, single, TypeTime, "", ""),
		item(14, "UTC Offset", opRW, single, TypeString, "", ""),
		item(15, "Timezone", opRW, single, TypeString, "", ""),
		item(16, "Supported Binding and Modes", opR, mandatory, TypeString, "", ""),
		item(17, "Device Type", opR, single, TypeString, "", ""),
		item(18, "Hardware Version", opR, single, TypeString, "", ""),
		item(19, "Software Version", opR, single, TypeString, "", ""),
		item(20, "Battery Status", opR, single, TypeInteger, "0..6", ""),
		item(21, "Memory Total", opR, single, TypeInteger, "", ""),
		item(22, "ExtDevInfo", opR, multiple, TypeObjlnk, "", ""),
	)
	// 1.1 moves the mV, mA and KB units into the descriptions.
	v11 := revise(v10, "1.1", "1.1",
		item(7, "Power Source Voltage", opR, multiple, TypeInteger, "", ""),
		item(8, "Power Source Current", opR, multiple, TypeInteger, "", ""),
		item(10, "Memory Free", opR, single, TypeInteger, "", ""),
	)
	// 1.2 reserves error codes 9 to 32 and writes the battery unit as "/100". The registry's
	// 1.2 file says LWM2MVersion 1.1.
	v12 := revise(v11, "1.2", "1.1",
		item(9, "Battery Level", opR, single, TypeInteger, "0..100", "/100"),
		item(11, "Error Code", opR, multiple|mandatory, TypeInteger, "0..32", ""),
	)
	return []*ObjectDef{v10, v11, v12}
}

// connectivityMonitoringObjects: Object 4, Connectivity Monitoring 1.0 to 1.3. 1.3 is kept
// because the registry publishes it as the current version. The registry files of 1.1 to 1.3
// declare LWM2MVersion 1.1 or none.
func connectivityMonitoringObjects() []*ObjectDef {
	v10 := object(4, "Connectivity Monitoring", "1.0", "1.0", single,
		item(0, "Network Bearer", opR, mandatory, TypeInteger, "0..50", ""),
		item(1, "Available Network Bearer", opR, multiple|mandatory, TypeInteger, "0..50", ""),
		item(2, "Radio Signal Strength", opR, mandatory, TypeInteger, "", "dBm"),
		item(3, "Link Quality", opR, single, TypeInteger, "", ""),
		item(4, "IP Addresses", opR, multiple|mandatory, TypeString, "", ""),
		item(5, "Router IP Addresses", opR, multiple, TypeString, "", ""),
		item(6, "Link Utilization", opR, single, TypeInteger, "0..100", "%"),
		item(7, "APN", opR, multiple, TypeString, "", ""),
		item(8, "Cell ID", opR, single, TypeInteger, "", ""),
		item(9, "SMNC", opR, single, TypeInteger, "0..999", ""),
		item(10, "SMCC", opR, single, TypeInteger, "0..999", ""),
	)
	v11 := revise(v10, "1.1", "1.1",
		item(11, "SignalSNR", opR, single, TypeInteger, "", "dB"),
	)
	v12 := revise(v11, "1.2", "1.1",
		item(12, "LAC", opR, single, TypeInteger, "", ""),
	)
	// 1.3 also moves dBm into the description and writes the percentage unit as "/100".
	v13 := revise(v12, "1.3", "1.1",
		item(2, "Radio Signal Strength", opR, mandatory, TypeInteger, "", ""),
		item(6, "Link Utilization", opR, single, TypeInteger, "0..100", "/100"),
		item(13, "Coverage Enhancement Level", opR, single, TypeInteger, "0..4", ""),
	)
	return []*ObjectDef{v10, v11, v12, v13}
}

// firmwareUpdateItems10 are the Firmware Update 1.0 resources. Resource 4 (Update Supported
// Objects) was withdrawn before 1.0 was approved and its id was never reused.
func firmwareUpdateItems10() []*ResourceDef {
	return []*ResourceDef{
		item(0, "Package", opW, mandatory, TypeOpaque, "", ""),
		item(1, "Package URI", opRW, mandatory, TypeString, "0..255", ""),
		item(2, "Update", opE, mandatory, TypeNone, "", ""),
		item(3, "State", opR, mandatory, TypeInteger, "0..3", ""),
		item(5, "Update Result", opR, mandatory, TypeInteger, "0..9", ""),
		item(6, "PkgName", opR, single, TypeString, "0..255", ""),
		item(7, "PkgVersion", opR, single, TypeString, "0..255", ""),
		item(8, "Firmware Update Protocol Support", opR, multiple, TypeInteger, "0..5", ""),
		item(9, "Firmware Update Delivery Method", opR, mandatory, TypeInteger, "0..2", ""),
	}
}

// firmwareUpdateItems11 are what Firmware Update 1.1 adds or changes: Update Result gains
// 10 (cancelled) and 11 (deferred), and resources 10 to 13 support cancel and deferral.
func firmwareUpdateItems11() []*ResourceDef {
	return []*ResourceDef{
		item(5, "Update Result", opR, mandatory, TypeInteger, "0..11", ""),
		item(10, "Cancel", opE, single, TypeNone, "", ""),
		item(11, "Severity", opRW, single, TypeInteger, "0..2", ""),
		item(12, "Last State Change Time", opR, single, TypeTime, "", ""),
		item(13, "Maximum Defer Period", opRW, single, TypeUnsignedInteger, "", "s"),
	}
}

// firmwareUpdateObjects: Object 5, Firmware Update 1.0 and 1.1. The 1.0.x revisions
// (1.0.1 to 1.0.3) changed descriptions only. 1.2 is not built in; see the file comment.
func firmwareUpdateObjects() []*ObjectDef {
	v10 := object(5, "Firmware Update", "1.0", "1.0", single, firmwareUpdateItems10()...)
	v11 := revise(v10, "1.1", "1.1", firmwareUpdateItems11()...)
	return []*ObjectDef{v10, v11}
}

// softwareManagementObjects: Object 9, LwM2M Software Management 1.0 and 1.1 (no 1.2 exists).
func softwareManagementObjects() []*ObjectDef {
	v10 := object(9, "LWM2M Software Management", "1.0", "1.0", multiple,
		item(0, "PkgName", opR, mandatory, TypeString, "0..255 bytes", ""),
		item(1, "PkgVersion", opR, mandatory, TypeString, "0..255 bytes", ""),
		item(2, "Package", opW, single, TypeOpaque, "", ""),
		item(3, "Package URI", opW, single, TypeString, "0..255 bytes", ""),
		item(4, "Install", opE, mandatory, TypeNone, "", ""),
		item(5, "Checkpoint", opR, single, TypeObjlnk, "", ""),
		item(6, "Uninstall", opE, mandatory, TypeNone, "", ""),
		item(7, "Update State", opR, mandatory, TypeInteger, "0..4", ""),
		item(8, "Update Supported Objects", opRW, single, TypeBoolean, "", ""),
		item(9, "Update Result", opR, mandatory, TypeInteger, "0..200", ""),
		item(10, "Activate", opE, mandatory, TypeNone, "", ""),
		item(11, "Deactivate", opE, mandatory, TypeNone, "", ""),
		item(12, "Activation State", opR, mandatory, TypeBoolean, "", ""),
		item(13, "Package Settings", opRW, single, TypeObjlnk, "", ""),
		item(14, "User Name", opW, single, TypeString, "0..255 bytes", ""),
		item(15, "Password", opW, single, TypeString, "0..255 bytes", ""),
		item(16, "Status Reason", opR, single, TypeString, "", ""),
		item(17, "Software Component Link", opR, multiple, TypeObjlnk, "", ""),
		item(18, "Software Component tree length", opR, single, TypeInteger, "0..255", ""),
	)
	v11 := revise(v10, "1.1", "1.1",
		item(19, "Start", opE, mandatory, TypeNone, "", ""),
		item(20, "Stop", opE, mandatory, TypeNone, "", ""),
		item(21, "Operational State", opR, mandatory, TypeUnsignedInteger, "0..15", ""),
		item(22, "Purge", opE, single, TypeNone, "", ""),
	)
	return []*ObjectDef{v10, v11}
}

// advancedFirmwareUpdateObjects: Object 33629, Advanced Firmware Update 1.0 (the only
// version), registered by AVSystem. It is a multiple-instance Firmware Update 1.1, one
// instance per firmware component, whose Update Result adds 12 (conflicting state) and 13
// (dependency error), plus component name, version and the instances updated together.
// Its URN is in the oma namespace, as its registry file declares.
func advancedFirmwareUpdateObjects() []*ObjectDef {
	d := object(33629, "Advanced Firmware Update", "1.0", "1.1", multiple, firmwareUpdateItems10()...)
	for _, it := range firmwareUpdateItems11() {
		d.Resources[it.ID] = it
	}
	for _, it := range []*ResourceDef{
		item(5, "Update Result", opR, mandatory, TypeInteger, "0..13", ""),
		item(14, "Component Name", opR, mandatory, TypeString, "", ""),
		item(15, "Current Version", opR, mandatory, TypeString, "", ""),
		item(16, "Linked Instances", opR, multiple, TypeObjlnk, "", ""),
		item(17, "Conflicting Instances", opR, multiple, TypeObjlnk, "", ""),
	} {
		d.Resources[it.ID] = it
	}
	return []*ObjectDef{d}
}
