// Package spanneremu runs the official Cloud Spanner emulator
// (emulator_main from the Debian package google-cloud-cli-spanner-emulator)
// for tests and the local stack, and hands out client options that point
// the real Spanner clients at it.
//
// What it emulates: the Spanner data and admin gRPC APIs, as implemented by
// Google's emulator (an in-memory database; nothing survives Stop). The
// gRPC server alone is started (emulator_main, not gateway_main: no REST
// gateway, no second process to clean up).
//
// Behaviour of the emulator that differs from real Spanner (measured with
// emulator 1.5.28): only one read-write transaction at a time
// (concurrent ones fail with NotFound / FailedPrecondition rather than
// ABORTED, so callers need an emulator-only mutex); BatchWrite is
// Unimplemented; commit stats are nil; the 80,000-mutation limit is not
// enforced; unordered query results come back in random order.
//
// How a run works:
//
//	e, err := spanneremu.Start(ctx) // emulator_main --host_port 127.0.0.1:0
//	defer e.Stop()
//	db, err := e.CreateDatabase(ctx, "mydb", ddl)
//	client, err := e.NewClient(ctx, db) // or spanner.NewClientWithConfig(ctx, db, e.ClientConfig(), e.ClientOptions()...)
//
// Start asks the kernel for the port (port 0) and learns it from /proc
// rather than picking a "free" port beforehand: the emulator's gRPC server
// sets SO_REUSEPORT, so two emulators given the same port would both start
// and silently share it. Readiness = the emulator holds exactly one
// listening socket and an instance-admin ListInstanceConfigs call succeeds;
// Start then creates the instance projects/conifer-test/instances/test
// (config emulator-config).
//
// Nothing here reads or sets SPANNER_EMULATOR_HOST: tests in one binary may
// run several emulators, so the options are passed explicitly. [Emulator.Env]
// gives the variable for child processes.
//
// For tests, [Main], [ForTest] and [NewTestDatabase] share one emulator per
// test binary, started on first use and stopped after m.Run; the emulator
// also dies with the test binary (Pdeathsig) if the binary is killed.
package spanneremu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/spanner"
	database "cloud.google.com/go/spanner/admin/database/apiv1"
	"cloud.google.com/go/spanner/admin/database/apiv1/databasepb"
	instance "cloud.google.com/go/spanner/admin/instance/apiv1"
	"cloud.google.com/go/spanner/admin/instance/apiv1/instancepb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/conifer-kt/conifer/emulators/internal/launch"
)

const (
	// DefaultProject and DefaultInstance name the instance Start creates.
	DefaultProject  = "conifer-test"
	DefaultInstance = "test"

	// DebianPackage provides the emulator binary.
	DebianPackage = "google-cloud-cli-spanner-emulator"
	// binaryPath is emulator_main's path below the Cloud SDK root.
	binaryPath = "bin/cloud_spanner_emulator/emulator_main"

	// StartTimeout bounds Start when ctx has no deadline.
	StartTimeout = 60 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 3 * time.Second
	// emulatorConfig is the only instance config the emulator offers.
	emulatorConfig = "emulator-config"
)

// ErrNotInstalled is wrapped by Start's error when gcloud or the emulator
// binary is missing; the message names the Debian package to install.
var ErrNotInstalled = launch.ErrNotInstalled

// Emulator is a running Spanner emulator with one instance.
type Emulator struct {
	// Host is the emulator's gRPC address, "127.0.0.1:PORT".
	Host string
	// Project and Instance name the instance Start created
	// (projects/Project/instances/Instance).
	Project, Instance string

	proc      *launch.Process
	instAdmin *instance.InstanceAdminClient

	mu      sync.Mutex
	dbAdmin *database.DatabaseAdminClient
}

// Start launches emulator_main on a kernel-chosen port of 127.0.0.1, waits
// until it answers, and creates the instance DefaultProject/DefaultInstance.
// If ctx has no deadline, StartTimeout applies. A missing gcloud or binary
// gives an error wrapping [ErrNotInstalled] that names the Debian package.
func Start(ctx context.Context) (*Emulator, error) {
	bin, err := launch.Binary(binaryPath, DebianPackage)
	if err != nil {
		return nil, fmt.Errorf("couldn't start the Spanner emulator: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StartTimeout)
		defer cancel()
	}
	proc, err := launch.Start(launch.Spec{
		Name: "Spanner emulator",
		Path: bin,
		Args: []string{"--host_port", "127.0.0.1:0"},
	})
	if err != nil {
		return nil, err
	}
	e := &Emulator{Project: DefaultProject, Instance: DefaultInstance, proc: proc}
	if err := e.waitReady(ctx); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	if err := e.createInstance(ctx); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	return e, nil
}

// waitReady learns the port from /proc, then polls ListInstanceConfigs.
func (e *Emulator) waitReady(ctx context.Context) error {
	return e.proc.WaitReady(ctx, func(ctx context.Context) error {
		if e.instAdmin == nil {
			ports, err := e.proc.ListeningPorts()
			if err != nil {
				return err
			}
			switch len(ports) {
			case 0:
				return errors.New("no listening socket yet")
			case 1:
			default:
				return fmt.Errorf("the emulator listens on several ports %v, expected one: %w", ports, launch.ErrGiveUp)
			}
			e.Host = fmt.Sprintf("127.0.0.1:%d", ports[0])
			c, err := instance.NewInstanceAdminClient(ctx, e.ClientOptions()...)
			if err != nil {
				return fmt.Errorf("couldn't create the instance admin client: %w: %w", err, launch.ErrGiveUp)
			}
			e.instAdmin = c
		}
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		it := e.instAdmin.ListInstanceConfigs(callCtx, &instancepb.ListInstanceConfigsRequest{
			Parent: "projects/" + e.Project,
		})
		if _, err := it.Next(); err != nil && err != iterator.Done {
			return fmt.Errorf("couldn't list instance configs: %w", err)
		}
		return nil
	})
}

func (e *Emulator) createInstance(ctx context.Context) error {
	op, err := e.instAdmin.CreateInstance(ctx, &instancepb.CreateInstanceRequest{
		Parent:     "projects/" + e.Project,
		InstanceId: e.Instance,
		Instance: &instancepb.Instance{
			Config:      "projects/" + e.Project + "/instanceConfigs/" + emulatorConfig,
			DisplayName: e.Instance,
			NodeCount:   1,
		},
	})
	if err != nil {
		return fmt.Errorf("couldn't create the instance %s: %w", e.InstancePath(), err)
	}
	if _, err := op.Wait(ctx); err != nil {
		return fmt.Errorf("couldn't create the instance %s: %w", e.InstancePath(), err)
	}
	return nil
}

// Stop closes the admin clients, ends the emulator's process group and
// waits until no process of it remains. Calling it again returns the first
// result.
func (e *Emulator) Stop() error {
	var errs []error
	e.mu.Lock()
	if e.dbAdmin != nil {
		errs = append(errs, e.dbAdmin.Close())
		e.dbAdmin = nil
	}
	e.mu.Unlock()
	if e.instAdmin != nil {
		errs = append(errs, e.instAdmin.Close())
		e.instAdmin = nil
	}
	if err := e.proc.Stop(stopGrace); err != nil {
		errs = append(errs, fmt.Errorf("couldn't stop the Spanner emulator: %w", err))
	}
	return errors.Join(errs...)
}

// Pid returns the emulator's process id, which is also its process-group id.
func (e *Emulator) Pid() int { return e.proc.Pid() }

// InstancePath returns "projects/Project/instances/Instance".
func (e *Emulator) InstancePath() string {
	return "projects/" + e.Project + "/instances/" + e.Instance
}

// ClientOptions returns the options that point a Spanner data or admin
// client at the emulator: its endpoint, plaintext gRPC, no credentials, no
// telemetry.
func (e *Emulator) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(e.Host),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled(),
	}
}

// ClientConfig returns the spanner.ClientConfig to use with the emulator:
// built-in metrics off. (With SPANNER_EMULATOR_HOST unset, the client would
// otherwise try to export metrics to Cloud Monitoring.)
func (e *Emulator) ClientConfig() spanner.ClientConfig {
	return spanner.ClientConfig{DisableNativeMetrics: true}
}

// NewClient returns a Spanner data client for dbPath
// ("projects/P/instances/I/databases/D") connected to the emulator.
func (e *Emulator) NewClient(ctx context.Context, dbPath string) (*spanner.Client, error) {
	c, err := spanner.NewClientWithConfig(ctx, dbPath, e.ClientConfig(), e.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("couldn't create a Spanner client for %s: %w", dbPath, err)
	}
	return c, nil
}

// DatabaseAdmin returns the emulator's shared database admin client
// (created on first use, closed by Stop).
func (e *Emulator) DatabaseAdmin(ctx context.Context) (*database.DatabaseAdminClient, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dbAdmin == nil {
		c, err := database.NewDatabaseAdminClient(ctx, e.ClientOptions()...)
		if err != nil {
			return nil, fmt.Errorf("couldn't create the database admin client: %w", err)
		}
		e.dbAdmin = c
	}
	return e.dbAdmin, nil
}

// CreateDatabase creates the database name (2–30 characters,
// [a-z][a-z0-9_-]*[a-z0-9]) in the emulator's instance with the given DDL
// statements and returns its path "projects/P/instances/I/databases/name".
func (e *Emulator) CreateDatabase(ctx context.Context, name string, ddl []string) (dbPath string, err error) {
	admin, err := e.DatabaseAdmin(ctx)
	if err != nil {
		return "", err
	}
	op, err := admin.CreateDatabase(ctx, &databasepb.CreateDatabaseRequest{
		Parent:          e.InstancePath(),
		CreateStatement: "CREATE DATABASE `" + name + "`",
		ExtraStatements: ddl,
	})
	if err != nil {
		return "", fmt.Errorf("couldn't create the database %s: %w", name, err)
	}
	db, err := op.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("couldn't create the database %s: %w", name, err)
	}
	return db.GetName(), nil
}

// DropDatabase drops the database at dbPath.
func (e *Emulator) DropDatabase(ctx context.Context, dbPath string) error {
	admin, err := e.DatabaseAdmin(ctx)
	if err != nil {
		return err
	}
	if err := admin.DropDatabase(ctx, &databasepb.DropDatabaseRequest{Database: dbPath}); err != nil {
		return fmt.Errorf("couldn't drop the database %s: %w", dbPath, err)
	}
	return nil
}

// Env returns the environment entry that points a child process's Spanner
// clients at the emulator: "SPANNER_EMULATOR_HOST=127.0.0.1:PORT".
func (e *Emulator) Env() []string {
	return []string{"SPANNER_EMULATOR_HOST=" + e.Host}
}
