// Package pubsubemu runs the official Cloud Pub/Sub emulator
// (cloud-pubsub-emulator from the Debian package
// google-cloud-cli-pubsub-emulator, a Java program) for tests and the local
// stack, and hands out client options that point the real
// cloud.google.com/go/pubsub/v2 client at it.
//
// What it emulates: topics, subscriptions, publish, pull and streaming pull,
// push subscriptions, ordering keys and dead-lettering, as implemented by
// Google's emulator (in memory; nothing survives Stop). Known differences
// from the real service (measured with emulator 0.8.20): subscription
// filters are accepted but not applied; IAM methods are not supported
// (the emulator says so at start). The Go client refuses messages of about
// 10 MB or more, as production does.
//
// How a run works:
//
//	e, err := pubsubemu.Start(ctx) // cloud-pubsub-emulator --host=127.0.0.1 --port=P
//	defer e.Stop()
//	client, err := e.NewClient(ctx) // or pubsub.NewClient(ctx, e.Project, e.ClientOptions()...)
//	topic, err := e.CreateTopic(ctx, "epochs")
//	sub, err := e.CreateSubscription(ctx, "verifier", topic, true) // ordered
//
// The emulator can't report a port it chose itself (given --port=0 it
// prints "listening on 0" and opens two sockets), so Start picks a free
// port, starts the emulator on it, and treats it as ready only when /proc
// shows that the emulator's own process holds the listening socket and no
// other process does, and a ListTopics call succeeds. A port stolen in the
// meantime (the emulator logs a BindException and keeps running) makes
// Start stop that emulator and try again on a new port.
//
// Nothing here reads or sets PUBSUB_EMULATOR_HOST: options are passed
// explicitly; [Emulator.Env] gives the variable for child processes.
//
// For tests, [Main], [ForTest] and [NewTestTopic] share one emulator per
// test binary, started on first use (a JVM: a few seconds) and stopped
// after m.Run; the emulator also dies with the test binary (Pdeathsig).
package pubsubemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/conifer-kt/conifer/emulators/internal/launch"
)

const (
	// DefaultProject is the project the emulator's resources live in.
	DefaultProject = "conifer-test"

	// DebianPackage provides the emulator.
	DebianPackage = "google-cloud-cli-pubsub-emulator"
	// javaPackage provides java when neither JAVA_HOME nor java on PATH is
	// set up.
	javaPackage = "default-jre-headless"
	// launcherPath is the emulator's start script below the Cloud SDK root;
	// it execs java, so the java process keeps the script's pid.
	launcherPath = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"

	// StartTimeout bounds Start when ctx has no deadline.
	StartTimeout = 90 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// portAttempts is how many ports Start tries before giving up.
	portAttempts = 5
)

// ErrNotInstalled is wrapped by Start's error when gcloud, the emulator or
// Java is missing; the message names the Debian package to install.
var ErrNotInstalled = launch.ErrNotInstalled

// errPortTaken marks a start attempt that lost its port to another process.
var errPortTaken = errors.New("port taken by another process")

// Emulator is a running Pub/Sub emulator.
type Emulator struct {
	// Host is the emulator's gRPC address, "127.0.0.1:PORT".
	Host string
	// Project is the project id to use with it (any id works; this is the
	// one the helpers use).
	Project string

	proc *launch.Process

	mu     sync.Mutex
	client *pubsub.Client // shared admin client, created on first use
}

// Start launches the emulator on a free port of 127.0.0.1 and waits until
// it answers ListTopics. If ctx has no deadline, StartTimeout applies. A
// missing gcloud, emulator or Java gives an error wrapping
// [ErrNotInstalled] that names the Debian package to install.
func Start(ctx context.Context) (*Emulator, error) {
	bin, err := launch.Binary(launcherPath, DebianPackage)
	if err != nil {
		return nil, fmt.Errorf("couldn't start the Pub/Sub emulator: %w", err)
	}
	if err := checkJava(); err != nil {
		return nil, fmt.Errorf("couldn't start the Pub/Sub emulator: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StartTimeout)
		defer cancel()
	}
	var errs []error
	for range portAttempts {
		e, err := startOnce(ctx, bin)
		if err == nil {
			return e, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// checkJava fails early, naming a package, when the start script would not
// find java.
func checkJava() error {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		return nil // the script itself reports a bad JAVA_HOME
	}
	if _, err := exec.LookPath("java"); err != nil {
		return fmt.Errorf("couldn't find java (install it with `apt-get install %s`): %w: %w", javaPackage, ErrNotInstalled, err)
	}
	return nil
}

func startOnce(ctx context.Context, bin string) (*Emulator, error) {
	port, err := launch.FreePort()
	if err != nil {
		return nil, err
	}
	proc, err := launch.Start(launch.Spec{
		Name: "Pub/Sub emulator",
		Path: bin,
		Args: []string{"--host=127.0.0.1", "--port=" + strconv.Itoa(port)},
	})
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		Host:    "127.0.0.1:" + strconv.Itoa(port),
		Project: DefaultProject,
		proc:    proc,
	}
	err = proc.WaitReady(ctx, func(ctx context.Context) error {
		if strings.Contains(proc.Output(), "Address already in use") {
			return fmt.Errorf("the emulator couldn't bind port %d: %w: %w", port, errPortTaken, launch.ErrGiveUp)
		}
		held, err := proc.HoldsPort(port)
		if errors.Is(err, launch.ErrGiveUp) {
			return fmt.Errorf("%w: %w", errPortTaken, err)
		}
		if err != nil {
			return err
		}
		if !held {
			return fmt.Errorf("port %d not bound yet", port)
		}
		return e.ping(ctx)
	})
	if err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	return e, nil
}

// ping lists the topics of e.Project.
func (e *Emulator) ping(ctx context.Context) error {
	c, err := e.adminClient(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", err, launch.ErrGiveUp)
	}
	callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	it := c.TopicAdminClient.ListTopics(callCtx, &pubsubpb.ListTopicsRequest{Project: "projects/" + e.Project})
	if _, err := it.Next(); err != nil && err != iterator.Done {
		return fmt.Errorf("couldn't list topics: %w", err)
	}
	return nil
}

// Stop closes the shared client, ends the emulator's process group (the
// JVM) and waits until no process of it remains. Calling it again returns
// the first result.
func (e *Emulator) Stop() error {
	var errs []error
	e.mu.Lock()
	if e.client != nil {
		errs = append(errs, e.client.Close())
		e.client = nil
	}
	e.mu.Unlock()
	if err := e.proc.Stop(stopGrace); err != nil {
		errs = append(errs, fmt.Errorf("couldn't stop the Pub/Sub emulator: %w", err))
	}
	return errors.Join(errs...)
}

// Pid returns the emulator's process id, which is also its process-group id.
func (e *Emulator) Pid() int { return e.proc.Pid() }

// ClientOptions returns the options that point a Pub/Sub client at the
// emulator: its endpoint, plaintext gRPC, no credentials, no telemetry.
func (e *Emulator) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(e.Host),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled(),
	}
}

// NewClient returns a new Pub/Sub client for e.Project connected to the
// emulator. The caller closes it.
func (e *Emulator) NewClient(ctx context.Context) (*pubsub.Client, error) {
	c, err := pubsub.NewClient(ctx, e.Project, e.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("couldn't create a Pub/Sub client: %w", err)
	}
	return c, nil
}

// adminClient returns the shared client used by the helpers.
func (e *Emulator) adminClient(ctx context.Context) (*pubsub.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		c, err := e.NewClient(ctx)
		if err != nil {
			return nil, err
		}
		e.client = c
	}
	return e.client, nil
}

// TopicName returns "projects/Project/topics/id".
func (e *Emulator) TopicName(id string) string { return "projects/" + e.Project + "/topics/" + id }

// SubscriptionName returns "projects/Project/subscriptions/id".
func (e *Emulator) SubscriptionName(id string) string {
	return "projects/" + e.Project + "/subscriptions/" + id
}

// CreateTopic creates the topic id and returns its name
// "projects/Project/topics/id".
func (e *Emulator) CreateTopic(ctx context.Context, id string) (string, error) {
	c, err := e.adminClient(ctx)
	if err != nil {
		return "", err
	}
	t, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: e.TopicName(id)})
	if err != nil {
		return "", fmt.Errorf("couldn't create the topic %s: %w", id, err)
	}
	return t.GetName(), nil
}

// CreateSubscription creates a pull subscription id on topic (a full topic
// name), with message ordering enabled if ordered, and returns its name
// "projects/Project/subscriptions/id".
func (e *Emulator) CreateSubscription(ctx context.Context, id, topic string, ordered bool) (string, error) {
	c, err := e.adminClient(ctx)
	if err != nil {
		return "", err
	}
	s, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  e.SubscriptionName(id),
		Topic:                 topic,
		EnableMessageOrdering: ordered,
		AckDeadlineSeconds:    10,
	})
	if err != nil {
		return "", fmt.Errorf("couldn't create the subscription %s: %w", id, err)
	}
	return s.GetName(), nil
}

// DeleteTopic deletes the topic with the full name topic.
func (e *Emulator) DeleteTopic(ctx context.Context, topic string) error {
	c, err := e.adminClient(ctx)
	if err != nil {
		return err
	}
	if err := c.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: topic}); err != nil {
		return fmt.Errorf("couldn't delete the topic %s: %w", topic, err)
	}
	return nil
}

// DeleteSubscription deletes the subscription with the full name sub.
func (e *Emulator) DeleteSubscription(ctx context.Context, sub string) error {
	c, err := e.adminClient(ctx)
	if err != nil {
		return err
	}
	if err := c.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: sub}); err != nil {
		return fmt.Errorf("couldn't delete the subscription %s: %w", sub, err)
	}
	return nil
}

// Env returns the environment entry that points a child process's Pub/Sub
// clients at the emulator: "PUBSUB_EMULATOR_HOST=127.0.0.1:PORT".
func (e *Emulator) Env() []string {
	return []string{"PUBSUB_EMULATOR_HOST=" + e.Host}
}
