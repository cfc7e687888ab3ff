package verifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/conifer-kt/conifer/format"
)

// Message is one delivery of an encoded format.BundleChunk: the data of
// a Pub/Sub message of the realm's epoch topic.
type Message struct {
	// Data is the encoded chunk.
	Data []byte
	// Ack is called (at most once, if not nil) when the verifier no
	// longer needs the message: its epoch is verified, it duplicates
	// what is, or it is dropped (malformed, another realm, or beyond what
	// Run buffers: the feed serves that epoch instead).
	Ack func()
	// Nack is called (at most once, if not nil) when Run returns still
	// holding the message, so that it is delivered again.
	Nack func()
}

func (m *Message) ack() {
	if m.Ack != nil {
		m.Ack()
	}
}

func (m *Message) nack() {
	if m.Nack != nil {
		m.Nack()
	}
}

// pending is a chunk set being collected from messages.
type pending struct {
	set     *chunkSet
	msgs    []Message
	created time.Time
}

// runner is the state of one Run.
type runner struct {
	v       *Verifier
	sets    []*pending // in order of arrival
	buffer  int        // bytes held in sets
	dropped bool       // a chunk of an epoch ≥ next was dropped: use the feed

	// progress logging
	lastLog      time.Time
	logEpoch     uint64
	sinceUpdates uint64
}

// Run follows the realm until ctx ends (returning nil) or a check fails
// (returning the *Misbehaviour; the binary exits non-zero). It verifies
// epochs in order from Next(), taking bundles from msgs (chunks from
// Pub/Sub, possibly duplicated or out of order; msgs may be nil) and
// fetching from the feed every epoch that Pub/Sub did not deliver whole:
//
//   - at start, it catches up from the feed until the feed has no next
//     epoch, logging progress;
//   - a later epoch complete while the next is not means the next was
//     missed: it is fetched from the feed;
//   - after PollInterval without progress it asks the feed anyway, and if
//     the feed has the next epoch, catches up from it again.
//
// Chunks of verified epochs are compared with what was verified
// (equivocation) and acknowledged. Cosignatures are sent to Ratify by a
// background worker, newest first, with retries and backoff. Errors other
// than misbehaviour (a failing disk) end Run; network errors do not: they
// are retried, shown in Status and logged.
func (v *Verifier) Run(ctx context.Context, msgs <-chan Message) error {
	if err := v.haltErr(); err != nil {
		return err
	}
	if v.feedURL == "" {
		return fmt.Errorf("%w: Run needs a feed URL", ErrConfig)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if v.ratifyURL != "" {
		wg.Go(func() { v.ratifyLoop(ctx) })
	}
	r := &runner{v: v, lastLog: time.Now()}
	defer r.release()
	return r.loop(ctx, msgs)
}

func (r *runner) loop(ctx context.Context, msgs <-chan Message) error {
	v := r.v
	catchUp := true
	v.setCatchingUp(true)
	pollDue := false
	lastProgress := time.Now()
	var retryAt time.Time
	backoff := v.cfg.RetryBackoff
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		progressed, err := r.settle(ctx)
		if err != nil {
			return r.result(ctx, err)
		}
		if progressed {
			lastProgress = time.Now()
			pollDue = false
		}
		next := v.Next()
		needFeed := catchUp || pollDue || r.dropped || r.gap(next)
		if needFeed && !time.Now().Before(retryAt) {
			polled := pollDue && !catchUp
			data, err := v.fetchBundle(ctx, next)
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, errNotFound) && r.gap(next):
				// A later epoch came whole from Pub/Sub, yet the feed
				// lacks this one: the feed lags (or lies); ask again later.
				v.setLastErr(err)
				v.log.WarnContext(ctx, "the feed lacks an epoch before one already published; will retry", "epoch", next, "retry_in", backoff)
				retryAt = time.Now().Add(backoff)
				backoff = min(2*backoff, max(v.cfg.PollInterval, v.cfg.RetryBackoff))
			case errors.Is(err, errNotFound):
				if catchUp {
					v.log.InfoContext(ctx, "caught up with the feed", "next", next)
				}
				catchUp, pollDue, r.dropped = false, false, false
				v.setCatchingUp(false)
				lastProgress = time.Now()
				backoff = v.cfg.RetryBackoff
			case err != nil:
				v.setLastErr(err)
				v.log.WarnContext(ctx, "couldn't fetch from the feed; will retry", "epoch", next, "err", err, "retry_in", backoff)
				retryAt = time.Now().Add(backoff)
				backoff = min(2*backoff, max(v.cfg.PollInterval, v.cfg.RetryBackoff))
			default:
				v.noteKnown(next)
				if err := v.VerifyBundle(ctx, next, data); err != nil {
					return r.result(ctx, err)
				}
				r.progress(ctx, next, catchUp)
				// Pub/Sub was silent, yet the feed had an epoch: there
				// may be more; drain the feed until it has no next one.
				if polled {
					catchUp = true
					v.setCatchingUp(true)
				}
				lastProgress = time.Now()
				pollDue = false
				backoff = v.cfg.RetryBackoff
				retryAt = time.Time{}
				continue
			}
		}
		// Wait for a message, the poll, or the retry.
		wake := lastProgress.Add(v.cfg.PollInterval)
		if needFeed && retryAt.After(time.Now()) && retryAt.Before(wake) {
			wake = retryAt
		}
		timer.Reset(max(time.Until(wake), time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			r.offer(ctx, m)
		case <-timer.C:
			if !time.Now().Before(lastProgress.Add(v.cfg.PollInterval)) {
				pollDue = true
			}
		}
	}
}

// gap reports whether the next epoch looks lost: a later epoch's chunks
// are all here but not the next one's (the keyserver publishes epochs in
// order, so the next one will not come from Pub/Sub, or only late).
func (r *runner) gap(next uint64) bool {
	for _, p := range r.sets {
		if p.set.epoch > next && p.set.complete() {
			return true
		}
	}
	return false
}

// result maps an error that ends Run: a cancelled context is a graceful
// stop, anything else is returned.
func (r *runner) result(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// release nacks every message still held.
func (r *runner) release() {
	for _, p := range r.sets {
		for i := range p.msgs {
			p.msgs[i].nack()
		}
	}
	r.sets, r.buffer = nil, 0
}

// offer takes one delivered message.
func (r *runner) offer(ctx context.Context, m Message) {
	v := r.v
	c, err := format.ParseBundleChunk(m.Data)
	if err != nil {
		v.log.WarnContext(ctx, "dropped a malformed chunk", "err", err)
		m.ack()
		return
	}
	if c.Realm != v.realm.Realm {
		v.log.WarnContext(ctx, "dropped a chunk of another realm", "realm", c.Realm)
		m.ack()
		return
	}
	v.noteKnown(c.Epoch)
	next := v.Next()
	if c.Epoch < next {
		if rec, err := v.db.epoch(c.Epoch); err == nil && rec != nil && rec.digest == c.Digest {
			m.ack() // a duplicate of what was verified
			return
		}
	}
	for _, p := range r.sets {
		if p.set.matches(c) {
			if p.set.add(c) {
				r.buffer += len(c.Data)
			}
			p.msgs = append(p.msgs, m)
			return
		}
	}
	if c.Epoch > next+v.cfg.MaxAhead || r.buffer+len(c.Data) > v.cfg.MaxBuffer {
		if c.Epoch >= next {
			r.dropped = true
		}
		v.log.DebugContext(ctx, "dropped a chunk beyond the buffer; the feed will serve its epoch", "epoch", c.Epoch)
		m.ack()
		return
	}
	p := &pending{set: newChunkSet(c), msgs: []Message{m}, created: time.Now()}
	p.set.add(c)
	r.buffer += len(c.Data)
	r.sets = append(r.sets, p)
}

// settle processes what the held chunk sets allow: duplicates and
// conflicts of verified epochs, and the next epoch once complete. It
// reports whether an epoch was verified.
func (r *runner) settle(ctx context.Context) (bool, error) {
	v := r.v
	progressed := false
	for changed := true; changed; {
		changed = false
		next := v.Next()
		for i, p := range r.sets {
			s := p.set
			var done bool
			switch {
			case s.epoch < next:
				rec, err := v.db.epoch(s.epoch)
				if err != nil {
					return progressed, err
				}
				switch {
				case rec != nil && rec.digest == s.digest:
					done = true
				case s.complete():
					data, err := s.join()
					if err != nil {
						v.log.WarnContext(ctx, "dropped chunks that do not make a bundle", "epoch", s.epoch, "err", err)
					} else if err := v.VerifyBundle(ctx, s.epoch, data); err != nil {
						return progressed, err
					}
					done = true
				case time.Since(p.created) > 10*v.cfg.PollInterval:
					v.log.WarnContext(ctx, "dropped an incomplete bundle of a verified epoch", "epoch", s.epoch, "parts", len(s.parts), "have", s.have)
					done = true
				}
			case s.epoch == next && s.complete():
				data, err := s.join()
				if err != nil {
					v.log.WarnContext(ctx, "dropped chunks that do not make a bundle; the feed will serve the epoch", "epoch", s.epoch, "err", err)
					r.dropped = true
				} else {
					if err := v.VerifyBundle(ctx, s.epoch, data); err != nil {
						return progressed, err
					}
					r.progress(ctx, s.epoch, false)
					progressed = true
				}
				done = true
			}
			if done {
				for j := range p.msgs {
					p.msgs[j].ack()
				}
				r.buffer -= s.size
				r.sets = append(r.sets[:i], r.sets[i+1:]...)
				changed = true
				break
			}
		}
	}
	return progressed, nil
}

// progress logs a verified epoch: each one in steady state, a summary
// every 10 seconds while catching up.
func (r *runner) progress(ctx context.Context, n uint64, catchingUp bool) {
	v := r.v
	v.mu.Lock()
	updates := uint64(0)
	if v.newestHead != nil {
		updates = v.newestHead.UpdateCount
	}
	known := v.known
	v.mu.Unlock()
	r.sinceUpdates += updates
	if !catchingUp {
		v.log.InfoContext(ctx, "verified and co-signed epoch", "epoch", n, "updates", updates)
		return
	}
	if el := time.Since(r.lastLog); el >= 10*time.Second {
		v.log.InfoContext(ctx, "catching up", "epoch", n, "known", known,
			"epochs_per_s", float64(n-r.logEpoch)/el.Seconds(),
			"updates_per_s", float64(r.sinceUpdates)/el.Seconds())
		r.lastLog, r.logEpoch, r.sinceUpdates = time.Now(), n, 0
	}
}

// ratifyLoop sends queued cosignatures to Ratify, newest first, until ctx
// ends. A cosignature that fails RatifyAttempts times (or is refused
// outright) is abandoned: logged and kept in the state.
func (v *Verifier) ratifyLoop(ctx context.Context) {
	attempts := map[uint64]int{}
	for {
		n, ok, err := v.db.newestQueued()
		if err != nil {
			v.setLastErr(err)
			v.log.ErrorContext(ctx, "couldn't read the ratify queue", "err", err)
			return
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-v.ratifyWake:
				continue
			}
		}
		c, err := v.db.cosig(n)
		if err != nil || c == nil {
			v.log.ErrorContext(ctx, "couldn't read a queued cosignature", "epoch", n, "err", err)
			return
		}
		resp, err := v.postRatify(ctx, n, c.line)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case err == nil:
			delete(attempts, n)
			if err := v.db.finishCosig(n, cosigRatified); err != nil {
				v.log.ErrorContext(ctx, "couldn't record a ratified cosignature", "epoch", n, "err", err)
				return
			}
			v.noteRatified(n)
			v.log.DebugContext(ctx, "cosignature ratified", "epoch", n, "cosigners", resp.Cosigners)
			continue
		case !transient(err) || attempts[n]+1 >= v.cfg.RatifyAttempts:
			delete(attempts, n)
			v.setLastErr(err)
			v.log.ErrorContext(ctx, "gave up sending a cosignature", "epoch", n, "err", err)
			if err := v.db.finishCosig(n, cosigAbandoned); err != nil {
				v.log.ErrorContext(ctx, "couldn't record an abandoned cosignature", "epoch", n, "err", err)
				return
			}
			continue
		default:
			attempts[n]++
			wait = v.cfg.RetryBackoff << min(attempts[n]-1, 16)
			wait = min(wait, time.Minute)
			var he *httpError
			if errors.As(err, &he) && he.retryAfter > wait {
				wait = he.retryAfter
			}
			v.setLastErr(err)
			v.log.WarnContext(ctx, "couldn't send a cosignature; will retry", "epoch", n, "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-v.ratifyWake: // a newer cosignature goes first
			t.Stop()
		}
	}
}

func (v *Verifier) wakeRatify() {
	select {
	case v.ratifyWake <- struct{}{}:
	default:
	}
}

// noteKnown records that epoch n exists.
func (v *Verifier) noteKnown(n uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.known = max(v.known, n+1)
}

func (v *Verifier) noteRatified(n uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ratified = max(v.ratified, n+1)
}

func (v *Verifier) setLastErr(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lastErr = err.Error()
}

func (v *Verifier) setCatchingUp(b bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.catchingUp = b
}
