package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/capture"
)

// TestRetryStopsOnPermanentErrors: a failure that waiting cannot heal (privilege,
// configuration) ends the retries at once with that error; one that can heal is retried
// until it succeeds.
func TestRetryStopsOnPermanentErrors(t *testing.T) {
	for _, kind := range []capture.ErrorKind{capture.ErrPermission, capture.ErrConfig} {
		calls := 0
		want := &capture.CaptureError{Kind: kind, Msg: "capture: " + kind.Error()}
		err := retry(context.Background(), zap.NewNop(), "eth9", func() error {
			calls++
			return want
		})
		if !errors.Is(err, kind) || calls != 1 {
			t.Errorf("%v: retry returned %v after %d calls, want the error after 1", kind, err, calls)
		}
	}
	calls := 0
	err := retry(context.Background(), zap.NewNop(), "eth9", func() error {
		if calls++; calls == 1 {
			return &capture.CaptureError{Kind: capture.ErrInterfaceGone, Msg: "capture: gone"}
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Errorf("healable failure: retry returned %v after %d calls, want nil after 2", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = retry(ctx, zap.NewNop(), "eth9", func() error {
		return &capture.CaptureError{Kind: capture.ErrInterfaceNotFound, Msg: "capture: not found"}
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("retry until the context ends returned %v", err)
	}
}
