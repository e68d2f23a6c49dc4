package main

import (
	"image/color"
	"testing"
)

// A captured screen's colours land on the right cells: reverse video swaps
// them, 256-colour and 24-bit sequences are decoded, other escapes skipped.
func TestRenderColours(t *testing.T) {
	text := "ab\x1b[38;5;196mR\x1b[0m\x1b]0;title\x07\n\x1b[7mV\x1b[27m\x1b[48;2;0;0;255m \x1b[0m宽x\n"
	rows := parse(text)
	if len(rows) != 2 || len(rows[0]) != 3 || len(rows[1]) != 5 {
		t.Fatalf("rows %d, widths %d/%d; want 2 rows of 3 and 5 cells", len(rows), len(rows[0]), len(rows[1]))
	}
	if c := rows[0][2]; c.r != 'R' || c.fg != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("256-colour red cell: %+v", c)
	}
	if c := rows[1][0]; c.fg != defaultBG || c.bg != defaultFG {
		t.Errorf("reverse cell: %+v", c)
	}
	if c := rows[1][1]; c.bg != (color.RGBA{0, 0, 255, 255}) {
		t.Errorf("24-bit background: %+v", c)
	}
	img, err := render(rows, 14)
	if err != nil {
		t.Fatal(err)
	}
	cw := img.Bounds().Dx() / 5
	ch := img.Bounds().Dy() / 2
	// The blue background cell is blue in the image.
	if got := img.RGBAAt(cw+cw/2, ch+ch/2); got != (color.RGBA{0, 0, 255, 255}) {
		t.Errorf("pixel in the blue cell = %v", got)
	}
	// The red R has red pixels.
	red := false
	for x := 2 * cw; x < 3*cw; x++ {
		for y := 0; y < ch; y++ {
			if img.RGBAAt(x, y).R > 200 && img.RGBAAt(x, y).G < 60 {
				red = true
			}
		}
	}
	if !red {
		t.Error("no red pixels in the red R's cell")
	}
}
