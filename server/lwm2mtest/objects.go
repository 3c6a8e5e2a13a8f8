package lwm2mtest

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

// operations is what the object model allows on a resource (R, W, E in the OMA registry).
type operations uint8

const (
	opR operations = 1 << iota
	opW
	opE
)

// Hook errors map onto CoAP codes in the DM handler.
var (
	errBadRequest       = errors.New("bad request")         // 4.00
	errNotFound         = errors.New("not found")           // 4.04
	errMethodNotAllowed = errors.New("method not allowed")  // 4.05
	errNotAcceptable    = errors.New("not acceptable")      // 4.06
	errUnsupportedCF    = errors.New("unsupported content") // 4.15
)

// resourceDef is one resource of an object model, with the device behaviour behind it.
// Hooks run with Device.mu held and must not block: work that talks to the network is
// handed to a goroutine (or to afterWrite, when it must follow the response).
type resourceDef struct {
	id       uint16
	name     string
	typ      lwm2m.Type
	ops      operations
	multiple bool

	// read computes the value instead of the stored one (Current Time).
	read func(d *Device, p lwm2m.Path) (lwm2m.Value, bool)
	// write checks and applies a value written by the server; an error refuses the write.
	// The value is stored after write returns nil.
	write func(d *Device, p lwm2m.Path, v lwm2m.Value) error
	// execute runs an Execute; after, if not nil, runs once the 2.04 has been sent.
	execute func(d *Device, p lwm2m.Path, args string) (after func(), err error)
}

// objectDef is one object of the model.
type objectDef struct {
	id        uint16
	version   string // "" is 1.0
	multiple  bool   // multiple instances
	creatable bool   // the server may Create and Delete instances
	resources map[uint16]*resourceDef
}

func newObjectDef(id uint16, version string, multiple bool, res ...*resourceDef) *objectDef {
	o := &objectDef{id: id, version: version, multiple: multiple, resources: make(map[uint16]*resourceDef, len(res))}
	for _, r := range res {
		o.resources[r.id] = r
	}
	return o
}

func (o *objectDef) resourceIDs() []uint16 {
	ids := make([]uint16, 0, len(o.resources))
	for id := range o.resources {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// object is an object with its instances and their values.
type object struct {
	def       *objectDef
	instances map[uint16]*instance
}

// instance holds resource values: single resources by resource id, multiple ones by
// resource id then resource instance id.
type instance struct {
	single   map[uint16]lwm2m.Value
	multiple map[uint16]map[uint16]lwm2m.Value
}

func newInstance() *instance {
	return &instance{single: map[uint16]lwm2m.Value{}, multiple: map[uint16]map[uint16]lwm2m.Value{}}
}

func (o *object) instanceIDs() []uint16 {
	ids := make([]uint16, 0, len(o.instances))
	for id := range o.instances {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// tree is the device's data model. It is guarded by Device.mu.
type tree struct {
	objects map[uint16]*object
}

func (t *tree) objectIDs() []uint16 {
	ids := make([]uint16, 0, len(t.objects))
	for id := range t.objects {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (t *tree) addObject(def *objectDef, instances ...uint16) {
	o := &object{def: def, instances: map[uint16]*instance{}}
	for _, i := range instances {
		o.instances[i] = newInstance()
	}
	t.objects[def.id] = o
}

// ResourceType makes the tree a codec.Resolver.
func (t *tree) ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool) {
	o, ok := t.objects[objectID]
	if !ok {
		return lwm2m.TypeNone, false
	}
	r, ok := o.def.resources[resourceID]
	if !ok {
		return lwm2m.TypeNone, false
	}
	return r.typ, true
}

// lookup finds the object, instance and resource definition along p, as deep as p goes.
// It fails with errNotFound when a level p names does not exist.
func (t *tree) lookup(p lwm2m.Path) (*object, *instance, *resourceDef, error) {
	if p.Len() == 0 {
		return nil, nil, nil, errMethodNotAllowed
	}
	o, ok := t.objects[p.ObjectID()]
	if !ok {
		return nil, nil, nil, errNotFound
	}
	if p.Len() == 1 {
		return o, nil, nil, nil
	}
	in, ok := o.instances[p.InstanceID()]
	if !ok {
		return nil, nil, nil, errNotFound
	}
	if p.Len() == 2 {
		return o, in, nil, nil
	}
	rd, ok := o.def.resources[p.ResourceID()]
	if !ok {
		return nil, nil, nil, errNotFound
	}
	if !in.has(rd) {
		return nil, nil, nil, errNotFound
	}
	if p.Len() == 4 {
		if !rd.multiple {
			return nil, nil, nil, errNotFound
		}
		if _, ok := in.multiple[rd.id][p.ResourceInstanceID()]; !ok {
			return nil, nil, nil, errNotFound
		}
	}
	return o, in, rd, nil
}

// has reports whether the resource is instantiated; executable, write-only and computed
// resources always are.
func (in *instance) has(rd *resourceDef) bool {
	if rd.ops&opE != 0 || rd.ops&opR == 0 || rd.read != nil {
		return true
	}
	if rd.multiple {
		_, ok := in.multiple[rd.id]
		return ok
	}
	_, ok := in.single[rd.id]
	return ok
}

func (in *instance) set(rd *resourceDef, p lwm2m.Path, v lwm2m.Value) {
	if !rd.multiple {
		in.single[rd.id] = v
		return
	}
	m := in.multiple[rd.id]
	if m == nil {
		m = map[uint16]lwm2m.Value{}
		in.multiple[rd.id] = m
	}
	ri := uint16(0)
	if p.Len() == 4 {
		ri = p.ResourceInstanceID()
	}
	m[ri] = v
}

// records lists the readable values at or under p in path order. It does not check that
// p exists; callers lookup first.
func (d *Device) records(p lwm2m.Path) []lwm2m.Record {
	var out []lwm2m.Record
	for _, oid := range d.tree.objectIDs() {
		o := d.tree.objects[oid]
		if p.Len() >= 1 && oid != p.ObjectID() {
			continue
		}
		for _, iid := range o.instanceIDs() {
			if p.Len() >= 2 && iid != p.InstanceID() {
				continue
			}
			in := o.instances[iid]
			for _, rid := range o.def.resourceIDs() {
				if p.Len() >= 3 && rid != p.ResourceID() {
					continue
				}
				rd := o.def.resources[rid]
				if rd.ops&opR == 0 || !in.has(rd) {
					continue
				}
				rp := lwm2m.NewPath(oid, iid, rid)
				if rd.read != nil {
					if v, ok := rd.read(d, rp); ok {
						out = append(out, lwm2m.Record{Path: rp, Value: v})
					}
					continue
				}
				if !rd.multiple {
					out = append(out, lwm2m.Record{Path: rp, Value: in.single[rid]})
					continue
				}
				ris := make([]uint16, 0, len(in.multiple[rid]))
				for ri := range in.multiple[rid] {
					ris = append(ris, ri)
				}
				slices.Sort(ris)
				for _, ri := range ris {
					if p.Len() == 4 && ri != p.ResourceInstanceID() {
						continue
					}
					out = append(out, lwm2m.Record{Path: rp.Append(ri), Value: in.multiple[rid][ri]})
				}
			}
		}
	}
	return out
}

// The built-in objects. Resource ids and types follow the OMA registry (1.1/1.2).

func serverObject() *objectDef {
	return newObjectDef(1, "", true,
		&resourceDef{id: 0, name: "Short Server ID", typ: lwm2m.TypeInteger, ops: opR},
		&resourceDef{id: 1, name: "Lifetime", typ: lwm2m.TypeInteger, ops: opR | opW, write: writeLifetime},
		&resourceDef{id: 2, name: "Default Minimum Period", typ: lwm2m.TypeInteger, ops: opR | opW},
		&resourceDef{id: 3, name: "Default Maximum Period", typ: lwm2m.TypeInteger, ops: opR | opW},
		&resourceDef{id: 6, name: "Notification Storing When Disabled or Offline", typ: lwm2m.TypeBoolean, ops: opR | opW},
		&resourceDef{id: 7, name: "Binding", typ: lwm2m.TypeString, ops: opR | opW},
		&resourceDef{id: 8, name: "Registration Update Trigger", ops: opE, execute: executeUpdateTrigger},
		&resourceDef{id: 9, name: "Bootstrap-Request Trigger", ops: opE, execute: executeBootstrapTrigger}, // bootstrap_device.go
	)
}

func deviceObject() *objectDef {
	return newObjectDef(3, "", false,
		&resourceDef{id: 0, name: "Manufacturer", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 1, name: "Model Number", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 2, name: "Serial Number", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 3, name: "Firmware Version", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 4, name: "Reboot", ops: opE, execute: executeReboot},
		&resourceDef{id: 5, name: "Factory Reset", ops: opE, execute: executeNothing},
		&resourceDef{id: 9, name: "Battery Level", typ: lwm2m.TypeInteger, ops: opR},
		&resourceDef{id: 11, name: "Error Code", typ: lwm2m.TypeInteger, ops: opR, multiple: true},
		&resourceDef{id: 12, name: "Reset Error Code", ops: opE, execute: executeResetErrorCode},
		&resourceDef{id: 13, name: "Current Time", typ: lwm2m.TypeTime, ops: opR | opW, read: readCurrentTime, write: writeCurrentTime},
		&resourceDef{id: 14, name: "UTC Offset", typ: lwm2m.TypeString, ops: opR | opW},
		&resourceDef{id: 15, name: "Timezone", typ: lwm2m.TypeString, ops: opR | opW},
		&resourceDef{id: 16, name: "Supported Binding and Modes", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 17, name: "Device Type", typ: lwm2m.TypeString, ops: opR},
	)
}

// firmwareObject is Object 5; its state machine is in fwupdate.go. Writes to Package go to
// Device.push before the generic Write.
func firmwareObject(version string) *objectDef {
	o := newObjectDef(5, version, false,
		&resourceDef{id: 0, name: "Package", typ: lwm2m.TypeOpaque, ops: opW},
		&resourceDef{id: 1, name: "Package URI", typ: lwm2m.TypeString, ops: opR | opW, write: writePackageURI},
		&resourceDef{id: 2, name: "Update", ops: opE, execute: executeFirmwareUpdate},
		&resourceDef{id: 3, name: "State", typ: lwm2m.TypeInteger, ops: opR},
		&resourceDef{id: 5, name: "Update Result", typ: lwm2m.TypeInteger, ops: opR},
		&resourceDef{id: 6, name: "PkgName", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 7, name: "PkgVersion", typ: lwm2m.TypeString, ops: opR},
		&resourceDef{id: 8, name: "Firmware Update Protocol Support", typ: lwm2m.TypeInteger, ops: opR, multiple: true},
		&resourceDef{id: 9, name: "Firmware Update Delivery Method", typ: lwm2m.TypeInteger, ops: opR},
	)
	if version != "" && version != "1.0" {
		o.resources[10] = &resourceDef{id: 10, name: "Cancel", ops: opE, execute: executeFirmwareCancel}
	}
	return o
}

// newTree builds the objects every device serves, with their initial values.
func newTree(cfg DeviceConfig) *tree {
	t := &tree{objects: map[uint16]*object{}}
	t.addObject(serverObject(), 0)
	t.addObject(deviceObject(), 0)
	t.addObject(firmwareObject(cfg.Object5Version), 0)
	set := func(p string, v lwm2m.Value) {
		pp := lwm2m.MustParsePath(p)
		o := t.objects[pp.ObjectID()]
		o.instances[pp.InstanceID()].set(o.def.resources[pp.ResourceID()], pp, v)
	}
	set("/1/0/0", lwm2m.Integer(1))
	set("/1/0/1", lwm2m.Integer(int64(cfg.Lifetime/time.Second)))
	set("/1/0/6", lwm2m.Boolean(true))
	set("/1/0/7", lwm2m.String(cfg.Binding))
	set("/3/0/0", lwm2m.String(cfg.Manufacturer))
	set("/3/0/1", lwm2m.String(cfg.Model))
	set("/3/0/2", lwm2m.String(cfg.SerialNumber))
	set("/3/0/3", lwm2m.String(cfg.FirmwareVersion))
	set("/3/0/9", lwm2m.Integer(100))
	set("/3/0/11/0", lwm2m.Integer(0))
	set("/3/0/14", lwm2m.String("+00:00"))
	set("/3/0/15", lwm2m.String("Etc/UTC"))
	set("/3/0/16", lwm2m.String(cfg.Binding))
	if cfg.EmptyDeviceType {
		set("/3/0/17", lwm2m.String("")) // ProfileEmptyDeviceType
	} else {
		set("/3/0/17", lwm2m.String(cfg.DeviceType))
	}
	set("/5/0/1", lwm2m.String(""))
	if cfg.StuckDownloading {
		set("/5/0/3", lwm2m.Integer(FWDownloading))
	} else {
		set("/5/0/3", lwm2m.Integer(FWIdle))
	}
	set("/5/0/5", lwm2m.Integer(0))
	set("/5/0/6", lwm2m.String(""))
	set("/5/0/7", lwm2m.String(""))
	for i, proto := range cfg.Protocols {
		set("/5/0/8/"+strconv.Itoa(i), lwm2m.Integer(int64(proto)))
	}
	set("/5/0/9", lwm2m.Integer(deliveryValue(cfg.Delivery)))
	return t
}

// Hooks of the built-in resources.

func writeLifetime(d *Device, _ lwm2m.Path, v lwm2m.Value) error {
	if v.Int <= 0 {
		return errBadRequest
	}
	d.lifetime = time.Duration(v.Int) * time.Second
	d.lifetimeChanged = true
	d.triggerUpdate() // the server learns the new lifetime from an Update
	return nil
}

func executeUpdateTrigger(d *Device, _ lwm2m.Path, _ string) (func(), error) {
	return d.triggerUpdate, nil
}

func executeReboot(d *Device, _ lwm2m.Path, _ string) (func(), error) {
	return func() {
		go func() {
			if err := d.Reboot(d.ctx); err != nil {
				d.log.Warn("reboot", "err", err)
			}
		}()
	}, nil
}

func executeNothing(*Device, lwm2m.Path, string) (func(), error) { return nil, nil }

func executeResetErrorCode(d *Device, _ lwm2m.Path, _ string) (func(), error) {
	in := d.tree.objects[3].instances[0]
	in.multiple[11] = map[uint16]lwm2m.Value{0: lwm2m.Integer(0)}
	d.changed(lwm2m.NewPath(3, 0, 11))
	return nil, nil
}

func readCurrentTime(d *Device, _ lwm2m.Path) (lwm2m.Value, bool) {
	return lwm2m.Time(time.Now().Add(d.clockOffset)), true
}

func writeCurrentTime(d *Device, _ lwm2m.Path, v lwm2m.Value) error {
	d.clockOffset = time.Until(time.Unix(v.Int, 0))
	return nil
}

// objectLinks renders the registration payload: the root link with the declared content
// formats, then every object instance, with ver= on objects not at version 1.0.
func (d *Device) objectLinks() string {
	b := []byte(`</>;rt="oma.lwm2m"`)
	if cts := d.cfg.ContentFormats; len(cts) > 0 {
		b = append(b, ";ct="...)
		if len(cts) > 1 {
			b = append(b, '"')
		}
		for i, f := range cts {
			if i > 0 {
				b = append(b, ' ')
			}
			b = strconv.AppendUint(b, uint64(f), 10)
		}
		if len(cts) > 1 {
			b = append(b, '"')
		}
	}
	for _, oid := range d.tree.objectIDs() {
		o := d.tree.objects[oid]
		if len(o.instances) == 0 {
			b = append(b, ",</"...)
			b = strconv.AppendUint(b, uint64(oid), 10)
			b = append(b, '>')
			b = appendVersion(b, o.def.version)
			continue
		}
		for _, iid := range o.instanceIDs() {
			b = append(b, ",</"...)
			b = strconv.AppendUint(b, uint64(oid), 10)
			b = append(b, '/')
			b = strconv.AppendUint(b, uint64(iid), 10)
			b = append(b, '>')
			b = appendVersion(b, o.def.version)
		}
	}
	return string(b)
}

func appendVersion(b []byte, v string) []byte {
	if v == "" {
		return b
	}
	return append(append(b, ";ver="...), v...)
}
