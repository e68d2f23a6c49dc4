// Command ansipng renders a terminal screen captured with colours
// (`tmux capture-pane -p -e`) to a PNG, with the Go Mono font embedded in
// golang.org/x/image, so the README's dashboard screenshot needs no system
// fonts or ImageMagick. It understands SGR colour sequences (16, 256 and
// 24-bit colours, bold, underline, reverse) and skips other escapes.
//
//	go run ./internal/gen/ansipng -o docs/dashboard.png < screen.ansi
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

var (
	defaultFG = color.RGBA{0xd0, 0xd0, 0xd0, 0xff}
	defaultBG = color.RGBA{0x1c, 0x1c, 0x1c, 0xff}
)

// cell is one screen position.
type cell struct {
	r              rune
	fg, bg         color.RGBA
	bold, ul, wide bool
}

type attrs struct {
	fg, bg              color.RGBA
	bold, ul, rev, dflt bool
}

func main() {
	out := flag.String("o", "screen.png", "output PNG")
	size := flag.Float64("size", 14, "font size in points (72 dpi)")
	flag.Parse()
	in := io.Reader(os.Stdin)
	if flag.NArg() > 0 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fail(err)
		}
		defer f.Close()
		in = f
	}
	text, err := io.ReadAll(bufio.NewReader(in))
	if err != nil {
		fail(err)
	}
	img, err := render(parse(string(text)), *size)
	if err != nil {
		fail(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	if err := png.Encode(f, img); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ansipng:", err)
	os.Exit(1)
}

// parse turns captured text into rows of cells.
func parse(text string) [][]cell {
	text = strings.TrimRight(text, "\n")
	a := attrs{fg: defaultFG, bg: defaultBG}
	var rows [][]cell
	var row []cell
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			rows, row = append(rows, row), nil
			i++
		case c == 0x1b && i+1 < len(text) && text[i+1] == '[':
			j := i + 2
			for j < len(text) && (text[j] < 0x40 || text[j] > 0x7e) {
				j++
			}
			if j < len(text) && text[j] == 'm' {
				a.sgr(text[i+2 : j])
			}
			i = j + 1
		case c == 0x1b && i+1 < len(text) && text[i+1] == ']': // OSC: to BEL or ST
			j := i + 2
			for j < len(text) && text[j] != 0x07 && !(text[j] == 0x1b && j+1 < len(text) && text[j+1] == '\\') {
				j++
			}
			i = j + 1
			if j < len(text) && text[j] == 0x1b {
				i++
			}
		case c < 0x20:
			i++
		default:
			r, n := utf8.DecodeRuneInString(text[i:])
			fg, bg := a.fg, a.bg
			if a.rev {
				fg, bg = bg, fg
			}
			w := ansi.StringWidth(string(r))
			row = append(row, cell{r: r, fg: fg, bg: bg, bold: a.bold, ul: a.ul, wide: w == 2})
			if w == 2 {
				row = append(row, cell{r: 0, fg: fg, bg: bg})
			}
			i += n
		}
	}
	return append(rows, row)
}

// sgr applies "ESC [ params m".
func (a *attrs) sgr(params string) {
	ps := strings.FieldsFunc(params, func(r rune) bool { return r == ';' || r == ':' })
	if len(ps) == 0 {
		ps = []string{"0"}
	}
	for k := 0; k < len(ps); k++ {
		n, _ := strconv.Atoi(ps[k])
		switch {
		case n == 0:
			*a = attrs{fg: defaultFG, bg: defaultBG}
		case n == 1:
			a.bold = true
		case n == 4:
			a.ul = true
		case n == 7:
			a.rev = true
		case n == 22:
			a.bold = false
		case n == 24:
			a.ul = false
		case n == 27:
			a.rev = false
		case n >= 30 && n <= 37:
			a.fg = palette(n - 30)
		case n == 39:
			a.fg = defaultFG
		case n >= 40 && n <= 47:
			a.bg = palette(n - 40)
		case n == 49:
			a.bg = defaultBG
		case n >= 90 && n <= 97:
			a.fg = palette(n - 90 + 8)
		case n >= 100 && n <= 107:
			a.bg = palette(n - 100 + 8)
		case (n == 38 || n == 48) && k+1 < len(ps):
			var c color.RGBA
			switch ps[k+1] {
			case "5":
				if k+2 < len(ps) {
					v, _ := strconv.Atoi(ps[k+2])
					c, k = palette(v), k+2
				}
			case "2":
				if k+4 < len(ps) {
					r, _ := strconv.Atoi(ps[k+2])
					g, _ := strconv.Atoi(ps[k+3])
					b, _ := strconv.Atoi(ps[k+4])
					c, k = color.RGBA{uint8(r), uint8(g), uint8(b), 0xff}, k+4
				}
			}
			if n == 38 {
				a.fg = c
			} else {
				a.bg = c
			}
		}
	}
}

// palette is xterm's 256-colour table.
func palette(n int) color.RGBA {
	base := [16][3]uint8{{0, 0, 0}, {205, 0, 0}, {0, 205, 0}, {205, 205, 0}, {0, 0, 238}, {205, 0, 205}, {0, 205, 205}, {229, 229, 229},
		{127, 127, 127}, {255, 0, 0}, {0, 255, 0}, {255, 255, 0}, {92, 92, 255}, {255, 0, 255}, {0, 255, 255}, {255, 255, 255}}
	switch {
	case n < 0 || n > 255:
		return defaultFG
	case n < 16:
		return color.RGBA{base[n][0], base[n][1], base[n][2], 0xff}
	case n < 232:
		n -= 16
		step := func(v int) uint8 {
			if v == 0 {
				return 0
			}
			return uint8(55 + 40*v)
		}
		return color.RGBA{step(n / 36), step(n / 6 % 6), step(n % 6), 0xff}
	default:
		v := uint8(8 + 10*(n-232))
		return color.RGBA{v, v, v, 0xff}
	}
}

// render draws the cells with Go Mono.
func render(rows [][]cell, size float64) (*image.RGBA, error) {
	faces := make([]font.Face, 2)
	for i, ttf := range [][]byte{gomono.TTF, gomonobold.TTF} {
		f, err := opentype.Parse(ttf)
		if err != nil {
			return nil, err
		}
		if faces[i], err = opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull}); err != nil {
			return nil, err
		}
	}
	adv, _ := faces[0].GlyphAdvance('M')
	cw, m := adv.Ceil(), faces[0].Metrics()
	ch, ascent := m.Height.Ceil(), m.Ascent.Ceil()
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*cw, len(rows)*ch))
	draw.Draw(img, img.Bounds(), image.NewUniform(defaultBG), image.Point{}, draw.Src)
	for y, row := range rows {
		for x, c := range row {
			w := cw
			if c.wide {
				w = 2 * cw
			}
			rect := image.Rect(x*cw, y*ch, x*cw+w, (y+1)*ch)
			draw.Draw(img, rect, image.NewUniform(c.bg), image.Point{}, draw.Src)
			if c.r == 0 || c.r == ' ' {
				continue
			}
			face := faces[0]
			if c.bold {
				face = faces[1]
			}
			d := font.Drawer{Dst: img, Src: image.NewUniform(c.fg), Face: face,
				Dot: fixed.P(x*cw, y*ch+ascent)}
			d.DrawString(string(c.r))
			if c.ul {
				draw.Draw(img, image.Rect(x*cw, y*ch+ascent+2, x*cw+w, y*ch+ascent+3), image.NewUniform(c.fg), image.Point{}, draw.Src)
			}
		}
	}
	return img, nil
}
