package monitoring

// The Service's directory methods: organisations, workers, PINs, devices.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// PutOrganisation creates or replaces an organisation and returns it as
// stored.
func (s *Service) PutOrganisation(ctx context.Context, cmdID, actor string, org Organisation) (*Organisation, error) {
	if err := validateOrganisation(&org); err != nil {
		return nil, err
	}
	if r := org.Notify.Reports; len(r.Emails)+len(r.Webhooks) > 0 {
		if err := s.fieldAgreed(fieldNotifyReports, "org.notify.reports"); err != nil {
			return nil, err
		}
	}
	if err := s.contactsAgreed("org.contacts", org.Contacts); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdPutOrganisation, putOrganisationCmd{Header: s.header(actor), Org: org})
	if err != nil {
		return nil, err
	}
	return decodeResponse[Organisation](res.Response)
}

// PutWorker creates or updates a worker and returns it without PIN hashes.
// The worker's PIN fields are ignored: PINs are set only by SetPINs.
func (s *Service) PutWorker(ctx context.Context, cmdID, actor string, w Worker) (*Worker, error) {
	w.SafePINHash, w.DuressPINHash = "", ""
	if err := validateWorker(&w); err != nil {
		return nil, err
	}
	if err := s.contactsAgreed("worker.contacts", w.Contacts); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, cmdID, CmdPutWorker, putWorkerCmd{Header: s.header(actor), Worker: w})
	if err != nil {
		return nil, err
	}
	return decodeResponse[Worker](res.Response)
}

// SetPINs sets a worker's Safe PIN and Duress PIN (4 to 8 digits each). The
// Duress PIN may be empty (none); both empty clears the PINs. The PINs are
// hashed here, with fresh random salts, and only the hashes are replicated.
// It returns the worker's new PIN version.
func (s *Service) SetPINs(ctx context.Context, cmdID, actor, workerID, safePIN, duressPIN string) (uint64, error) {
	if err := validID("worker_id", workerID); err != nil {
		return 0, err
	}
	if safePIN != "" {
		if err := validatePIN("safe_pin", safePIN); err != nil {
			return 0, err
		}
	}
	if duressPIN != "" {
		if err := validatePIN("duress_pin", duressPIN); err != nil {
			return 0, err
		}
		if safePIN == "" {
			return 0, invalid("duress_pin", "a Duress PIN needs a Safe PIN")
		}
		if duressPIN == safePIN {
			return 0, invalid("duress_pin", "must differ from the Safe PIN")
		}
	}
	cmd := setPINsCmd{Header: s.header(actor), WorkerID: workerID}
	var err error
	if safePIN != "" {
		if cmd.SafePINHash, err = s.hashSecret(ctx, pinParams, safePIN); err != nil {
			return 0, err
		}
	}
	if duressPIN != "" {
		if cmd.DuressPINHash, err = s.hashSecret(ctx, pinParams, duressPIN); err != nil {
			return 0, err
		}
	}
	res, err := s.propose(ctx, cmdID, CmdSetPINs, cmd)
	if err != nil {
		return 0, err
	}
	r, err := decodeResponse[pinChange](res.Response)
	if err != nil {
		return 0, err
	}
	return r.PINVersion, nil
}

// PutDevice creates or updates a device's registration and returns it.
// Its telemetry is kept; it changes only by RecordDeviceStatus.
func (s *Service) PutDevice(ctx context.Context, cmdID, actor string, d Device) (*Device, error) {
	if err := validID("device.id", d.ID); err != nil {
		return nil, err
	}
	if !slices.Contains(deviceKinds, d.Kind) {
		return nil, invalid("device.kind", "%q is not one of %v", d.Kind, deviceKinds)
	}
	if err := validID("device.org_id", d.OrgID); err != nil {
		return nil, err
	}
	if d.WorkerID == "" && d.Kind != DevicePooled {
		return nil, invalid("device.worker_id", "a %s device needs an assigned worker; only pooled devices may be unassigned", d.Kind)
	}
	res, err := s.propose(ctx, cmdID, CmdPutDevice, putDeviceCmd{Header: s.header(actor), Device: d})
	if err != nil {
		return nil, err
	}
	return decodeResponse[Device](res.Response)
}

// RecordDeviceStatus records a batch of device telemetry, latest wins per
// device. Unknown devices and entries older than the stored ones are
// skipped. It returns how many entries were recorded.
func (s *Service) RecordDeviceStatus(ctx context.Context, cmdID, actor string, batch []DeviceStatus) (int, error) {
	if len(batch) == 0 {
		return 0, invalid("devices", "must not be empty")
	}
	for i := range batch {
		if err := validateDeviceStatus(i, &batch[i]); err != nil {
			return 0, err
		}
	}
	res, err := s.propose(ctx, cmdID, CmdDeviceStatus, deviceStatusCmd{Header: s.header(actor), Devices: batch, Rules: RulesLowBattery})
	if err != nil {
		return 0, err
	}
	r, err := decodeResponse[deviceStatusResult](res.Response)
	if err != nil {
		return 0, err
	}
	return r.Updated, nil
}

// Organisation returns one organisation from this node's state.
func (s *Service) Organisation(id string) (*Organisation, error) {
	var o *Organisation
	err := s.view(func(txn *badger.Txn) (err error) {
		o, err = getOrg(txn, id)
		return err
	})
	return o, err
}

// Organisations returns every organisation, by ID.
func (s *Service) Organisations() ([]Organisation, error) {
	return listRecords[Organisation](s, pOrg, nil)
}

// Worker returns one worker, without PIN hashes.
func (s *Service) Worker(id string) (*Worker, error) {
	var w *Worker
	err := s.view(func(txn *badger.Txn) (err error) {
		w, err = getWorker(txn, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return publicWorker(w), nil
}

// Workers returns the workers of an organisation (all when orgID is
// empty), by ID, without PIN hashes.
func (s *Service) Workers(orgID string) ([]Worker, error) {
	return listRecords(s, pWorker, func(w *Worker) bool {
		*w = *publicWorker(w)
		return orgID == "" || w.OrgID == orgID
	})
}

// Device returns one device.
func (s *Service) Device(id string) (*Device, error) {
	var d *Device
	err := s.view(func(txn *badger.Txn) (err error) {
		d, err = getDevice(txn, id)
		return err
	})
	return d, err
}

// Devices returns every device, by ID.
func (s *Service) Devices() ([]Device, error) {
	return listRecords[Device](s, pDevice, nil)
}

// listRecords returns the records under prefix that keep accepts (all when
// keep is nil), in key order. keep may change the record.
func listRecords[T any](s *Service, prefix string, keep func(*T) bool) ([]T, error) {
	out := []T{}
	err := s.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, prefix, true, func(key, val []byte) (bool, error) {
			var v T
			if err := json.Unmarshal(val, &v); err != nil {
				return false, fmt.Errorf("cannot decode %s: %w", key, err)
			}
			if keep == nil || keep(&v) {
				out = append(out, v)
			}
			return true, nil
		})
	})
	return out, err
}

// decodeResponse decodes a state machine response.
func decodeResponse[T any](b []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("cannot decode response %q: %w", strings.TrimSpace(string(b)), err)
	}
	return v, nil
}
