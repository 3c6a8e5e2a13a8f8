package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/fwupdate"
)

// jobsAndImages is a store of jobs that also keeps images: a job needs its image to exist.
type jobsAndImages interface {
	fwupdate.Store
	SaveImage(ctx context.Context, img *firmware.Image) error
	DeleteImage(ctx context.Context, id string) error
	GetImage(ctx context.Context, id string) (*firmware.Image, error)
	ImageInUse(ctx context.Context, id string) (bool, error)
}

// withImages makes the job tests' stores save the image each job names before the job, since a
// job for an image that does not exist is refused; image ids are made up per job.
type withImages struct{ jobsAndImages }

func (w withImages) CreateJob(ctx context.Context, j *fwupdate.Job, tr fwupdate.Transition) error {
	img := fullImage(j.ImageID)
	img.SHA256 = digest(len(j.ImageID) + len(j.ID))
	img.BlobKey = blobKey(img.SHA256)
	_ = w.SaveImage(ctx, img) // may exist already: several jobs share an image
	return w.jobsAndImages.CreateJob(ctx, j, tr)
}

// testJobNeedsImage: a job for an image that does not exist (or was deleted) is refused with
// fwupdate.ErrImageNotFound, and an image an active job delivers cannot be deleted.
func testJobNeedsImage(t *testing.T, s fwupdate.Store) {
	st, ok := s.(jobsAndImages)
	if !ok {
		t.Skip("the store keeps no images")
	}
	ctx := context.Background()
	j, tr := newJob("j-noimg", "urn:dev:noimg")
	if err := st.CreateJob(ctx, j, tr); !errors.Is(err, fwupdate.ErrImageNotFound) {
		t.Fatalf("CreateJob for a missing image: %v, want ErrImageNotFound", err)
	}
	if _, err := st.GetJob(ctx, j.ID); !errors.Is(err, fwupdate.ErrJobNotFound) {
		t.Fatalf("the refused job was stored: %v", err)
	}
	img := fullImage("img-used")
	if err := st.SaveImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	j, tr = fwupdate.NewJob("j-used", "urn:dev:used", fwupdate.ImageRef{ID: img.ID, Version: "1", Size: 1},
		fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", at(0))
	if err := st.CreateJob(ctx, j, tr); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteImage(ctx, img.ID); !errors.Is(err, firmware.ErrInUse) {
		t.Fatalf("DeleteImage of an image an active job delivers: %v, want ErrInUse", err)
	}
	// A campaign that has not ended names its image: the image stays until the campaign ends.
	if cs, ok := s.(campaigns.Store); ok {
		img := fullImage("img-1") // newCampaign's
		img.SHA256 = digest(4242)
		img.BlobKey = blobKey(img.SHA256)
		if err := st.SaveImage(ctx, img); err != nil {
			t.Fatal(err)
		}
		c := mustCreateCampaign(t, cs, "camp-img", "urn:dev:camp-1")
		if err := st.DeleteImage(ctx, img.ID); !errors.Is(err, firmware.ErrInUse) {
			t.Fatalf("DeleteImage of a draft campaign's image: %v, want ErrInUse", err)
		}
		c.State, c.Version = campaigns.StateAborted, c.Version+1
		if err := cs.SaveCampaign(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteImage(ctx, img.ID); err != nil {
			t.Fatalf("DeleteImage once the campaign ended: %v", err)
		}
	}
	if err := st.DeleteImage(ctx, "img-missing"); !errors.Is(err, firmware.ErrNotFound) {
		t.Fatalf("DeleteImage of a missing image: %v, want ErrNotFound", err)
	}
}

// testDeleteRacesJob: DeleteImage and CreateJob of the same image run at once, many times. Either
// the job wins (and the image stays, ErrInUse) or the delete wins (and the job is refused); never
// an active job for an image that no longer exists.
func testDeleteRacesJob(t *testing.T, s fwupdate.Store) {
	st, ok := s.(jobsAndImages)
	if !ok {
		t.Skip("the store keeps no images")
	}
	ctx := context.Background()
	wins := map[string]int{}
	for i := range 60 {
		img := fullImage(fmt.Sprintf("img-race-%d", i))
		img.SHA256 = digest(1000 + i)
		img.BlobKey = blobKey(img.SHA256)
		if err := st.SaveImage(ctx, img); err != nil {
			t.Fatal(err)
		}
		j, tr := fwupdate.NewJob(fmt.Sprintf("j-race-%d", i), fmt.Sprintf("urn:dev:race-%d", i),
			fwupdate.ImageRef{ID: img.ID, Version: "1", Size: 1}, fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", at(0))
		var delErr, jobErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; delErr = st.DeleteImage(ctx, img.ID) }()
		go func() { defer wg.Done(); <-start; jobErr = st.CreateJob(ctx, j, tr) }()
		close(start)
		wg.Wait()
		switch {
		case delErr == nil && errors.Is(jobErr, fwupdate.ErrImageNotFound):
			wins["delete"]++
		case errors.Is(delErr, firmware.ErrInUse) && jobErr == nil:
			wins["job"]++
		default:
			t.Fatalf("trial %d: DeleteImage = %v, CreateJob = %v: want exactly one to win", i, delErr, jobErr)
		}
		_, imgErr := st.GetImage(ctx, img.ID)
		_, getErr := st.GetJob(ctx, j.ID)
		if (imgErr != nil) != (getErr != nil) {
			t.Fatalf("trial %d: image %v, job %v: a job outlived its image (or the reverse)", i, imgErr, getErr)
		}
	}
	t.Logf("wins: %v", wins)
}
