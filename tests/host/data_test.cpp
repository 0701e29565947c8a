// IDX reading on Debian's Fashion-MNIST and on malformed files, and image grids.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <zlib.h>

#include "host/data/idx.hpp"
#include "host/image/vips_io.hpp"
#include "monge/plugin.hpp"

namespace fs = std::filesystem;

namespace {

std::string error_of(const fs::path& file) {
  try {
    monge::data::read_idx(file);
  } catch (const monge::Error& e) {
    return e.what();
  }
  return "(no error)";
}

fs::path temp_file(const std::string& name) { return fs::temp_directory_path() / ("monge-data-test-" + std::to_string(::getpid()) + name); }

TEST(Idx, ReadsFashionMnistTestImages) {
  const auto x = monge::data::read_idx_images(monge::data::fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz", 100);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{100, 1, 28, 28}));
  EXPECT_GE(x.min().item<float>(), -1.0f);
  EXPECT_LE(x.max().item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(x.max().item<float>(), 1.0f);  // some pixel is 255
  // Fashion-MNIST images have a dark background: most corner pixels are -1.
  EXPECT_GT(x.select(2, 0).select(2, 0).eq(-1).sum().item<int64_t>(), 90);
  const auto labels = monge::data::read_idx(monge::data::fashion_mnist_dir() / "t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(labels.size(0), 10000);
  EXPECT_EQ(labels.max().item<int64_t>(), 9);
  EXPECT_EQ(labels[0].item<int64_t>(), 9);  // the first test image is an ankle boot
}

TEST(Idx, PlainAndGzipFilesReadTheSame) {
  const fs::path plain = temp_file("plain.idx");
  {
    std::ofstream out(plain, std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
    for (int i = 0; i < 12; ++i) out.put(static_cast<char>(i * 20));
  }
  const fs::path gz = temp_file("plain.idx.gz");
  {
    std::ifstream in(plain, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    gzFile f = gzopen(gz.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  }
  const auto a = monge::data::read_idx(plain), b = monge::data::read_idx(gz);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_TRUE(a.equal(b));
  EXPECT_EQ(a[1][1][2].item<int64_t>(), 220);
  fs::remove(plain);
  fs::remove(gz);
}

TEST(Idx, MalformedFilesGiveClearErrors) {
  EXPECT_NE(error_of("/nonexistent/fashion-mnist/x.gz").find("no such IDX file"), std::string::npos);
  const fs::path f = temp_file("bad.idx");
  std::ofstream(f, std::ios::binary) << "hello world, not idx";
  EXPECT_NE(error_of(f).find("not an IDX file (bad magic number)"), std::string::npos) << error_of(f);
  {
    std::ofstream out(f, std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 1, 0, 0, 0, 100, 1, 2, 3};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  EXPECT_NE(error_of(f).find("truncated IDX file (expected 100 data bytes)"), std::string::npos) << error_of(f);
  std::ofstream(f, std::ios::binary).close();
  EXPECT_NE(error_of(f).find("truncated IDX file (no header)"), std::string::npos) << error_of(f);
  fs::remove(f);
}

TEST(ImageGrid, LaysOutRowsWithPadding) {
  auto batch = torch::arange(5).to(torch::kFloat).view({5, 1, 1, 1}).expand({5, 1, 2, 3}).contiguous();
  auto g = monge::image::grid(batch, 3, 1, -1.0);
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{1, 2 * 3 + 1, 3 * 4 + 1}));
  EXPECT_EQ(g[0][1][1].item<float>(), 0.0f);   // image 0, top-left
  EXPECT_EQ(g[0][1][5].item<float>(), 1.0f);   // image 1
  EXPECT_EQ(g[0][4][5].item<float>(), 4.0f);   // image 4, second row
  EXPECT_EQ(g[0][4][9].item<float>(), -1.0f);  // empty slot is padding
  EXPECT_EQ(g[0][0][0].item<float>(), -1.0f);
}

TEST(ImageIo, PngRoundTripAndNoPartialFileOnFailure) {
  if (!monge::image::available()) GTEST_SKIP() << "built without libvips";
  const fs::path png = temp_file("round.png");
  auto img = torch::linspace(-1, 1, 3 * 16 * 20).view({3, 16, 20});
  monge::image::save(img, png);
  auto back = monge::image::load(png);
  EXPECT_EQ(back.sizes(), img.sizes());
  EXPECT_LE((back - img).abs().max().item<float>(), 1.0f / 255 + 1e-6);  // 8-bit quantisation
  fs::remove(png);
  // An unknown extension fails inside libvips: nothing is left behind in the directory.
  const fs::path dir = temp_file("dir");
  fs::create_directories(dir);
  EXPECT_THROW(monge::image::save(img, dir / "out.notaformat"), monge::Error);
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
  EXPECT_THROW(monge::image::save(img, "/nonexistent-dir/x.png"), monge::Error);
}

}  // namespace
