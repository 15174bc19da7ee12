package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/pipeline"
)

// restoreLive restores the checkpoint of state.path (if set) into p, aged by the downtime.
// A missing file starts fresh; any other failure is logged in one line and the daemon
// starts fresh with a new pipeline from build (never fatal).
func restoreLive(p *pipeline.Pipeline, cfg *configs.Config, log *zap.Logger, build func() (*pipeline.Pipeline, error)) (*pipeline.Pipeline, error) {
	path := cfg.State.Path
	if path == "" {
		return p, nil
	}
	now := time.Now()
	info, err := p.RestoreState(path, pipeline.RestoreOptions{Resume: true, Now: now.UnixNano()})
	switch {
	case err == nil:
		log.Info("state restored",
			zap.String("path", path), zap.Int64("bytes", info.Bytes),
			zap.Time("written", time.Unix(0, info.Written)),
			zap.Duration("downtime", now.Sub(time.Unix(0, info.Written)).Round(time.Millisecond)),
			zap.Int("sources", info.Sources), zap.Int64("active_episodes", info.Episodes),
			zap.Int64("flows_and_victims", info.Flows),
			zap.Bool("surge_baseline_restored", info.SurgeRestored), zap.Float64("surge_baseline", info.SurgeBaseline),
			zap.Bool("hotspot_restored", info.HotspotRestored))
		return p, nil
	case checkpoint.KindOf(err) == checkpoint.Missing:
		log.Info("no state checkpoint yet; starting fresh", zap.String("path", path))
		return p, nil
	default:
		log.Warn(err.Error()+"; starting fresh", zap.String("path", path), zap.String("reason", checkpoint.KindOf(err).String()))
		return build() // the failed restore may have filled part of p
	}
}

// startCheckpoints makes p keep its episodes open at the end of capture and writes a
// checkpoint every state.checkpoint_interval until ctx ends. It returns a function that
// waits for the periodic writer to stop.
func startCheckpoints(ctx context.Context, p *pipeline.Pipeline, cfg *configs.Config) (wait func()) {
	if cfg.State.Path == "" {
		return func() {}
	}
	p.SetKeepState(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.RunCheckpoints(ctx, cfg.State.Path, cfg.State.CheckpointInterval.D())
	}()
	return func() { <-done }
}

// finalCheckpoint writes the state at shutdown; when that fails the open episodes end
// now, as they would without checkpoints, so none is left without its end line.
func finalCheckpoint(p *pipeline.Pipeline, cfg *configs.Config, log *zap.Logger) {
	if cfg.State.Path == "" {
		return
	}
	st, err := p.Checkpoint(cfg.State.Path)
	if err != nil {
		log.Error("final state checkpoint failed; ending every open episode now", zap.String("path", cfg.State.Path), zap.Error(err))
		p.FinishAll(time.Now().UnixNano())
		return
	}
	log.Info("state checkpoint written at shutdown", zap.String("path", cfg.State.Path), zap.Int64("bytes", st.Bytes),
		zap.Int("sources", st.Sources), zap.Duration("elapsed", st.Elapsed))
}

// replayStateIn restores --state-in (errors are fatal: the user asked for that state) and
// returns its clock.
func replayStateIn(p *pipeline.Pipeline, path string, log *zap.Logger) (clock int64, err error) {
	if path == "" {
		return 0, nil
	}
	info, err := p.RestoreState(path, pipeline.RestoreOptions{})
	if err != nil {
		return 0, fmt.Errorf("--state-in: %w", err)
	}
	log.Info("state restored", zap.String("path", path), zap.Int64("bytes", info.Bytes),
		zap.Time("clock", time.Unix(0, info.Clock)), zap.Int("sources", info.Sources),
		zap.Int64("active_episodes", info.Episodes), zap.Bool("surge_baseline_restored", info.SurgeRestored))
	return info.Clock, nil
}
