package io.github.optjava.checkpoint;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Test helper: writes stored zip archives byte by byte, with the features java.util.zip will not produce on
 * small files but torch.save does: zip64 extra fields and end records, data descriptors, CRC 0 and 64-byte
 * aligned data ("FB" padding extra field).
 */
final class ZipTestWriter {
  private record Entry(String name, byte[] data) {}

  private final List<Entry> entries = new ArrayList<>();
  private boolean zip64;
  private boolean dataDescriptor;
  private boolean computeCrc = true;
  private String comment = "";

  ZipTestWriter zip64(boolean on) {
    zip64 = on;
    return this;
  }

  ZipTestWriter dataDescriptor(boolean on) {
    dataDescriptor = on;
    return this;
  }

  ZipTestWriter computeCrc(boolean on) {
    computeCrc = on;
    return this;
  }

  ZipTestWriter comment(String c) {
    comment = c;
    return this;
  }

  ZipTestWriter add(String name, byte[] data) {
    entries.add(new Entry(name, data));
    return this;
  }

  byte[] toBytes() {
    Out out = new Out();
    Out central = new Out();
    for (Entry e : entries) {
      long localOffset = out.size();
      byte[] name = e.name.getBytes(StandardCharsets.UTF_8);
      long size = e.data.length;
      int crc = 0;
      if (computeCrc) {
        CRC32 c = new CRC32();
        c.update(e.data);
        crc = (int) c.getValue();
      }
      int flags = 0x0800 | (dataDescriptor ? 0x0008 : 0);
      Out localExtra = new Out();
      if (zip64) {
        localExtra.u16(1).u16(16).u64(dataDescriptor ? 0 : size).u64(dataDescriptor ? 0 : size);
      }
      // Pad (extra field "FB") so that the data start at a multiple of 64, as torch.save does.
      long dataStart = localOffset + 30 + name.length + localExtra.size() + 4;
      int pad = (int) ((64 - dataStart % 64) % 64);
      localExtra.u8('F').u8('B').u16(pad);
      for (int i = 0; i < pad; i++) {
        localExtra.u8('Z');
      }
      long localSize = dataDescriptor ? 0 : zip64 ? 0xffffffffL : size;
      out.u32(0x04034b50).u16(zip64 ? 45 : 20).u16(flags).u16(0).u16(0).u16(0x21)
          .u32(dataDescriptor ? 0 : crc).u32(localSize).u32(localSize).u16(name.length).u16(localExtra.size())
          .bytes(name).bytes(localExtra.toByteArray()).bytes(e.data);
      if (dataDescriptor) {
        out.u32(0x08074b50).u32(crc);
        if (zip64) {
          out.u64(size).u64(size);
        } else {
          out.u32(size).u32(size);
        }
      }
      Out centralExtra = new Out();
      if (zip64) {
        centralExtra.u16(1).u16(24).u64(size).u64(size).u64(localOffset);
      }
      long cenSize = zip64 ? 0xffffffffL : size;
      central.u32(0x02014b50).u16(0x031e).u16(zip64 ? 45 : 20).u16(flags).u16(0).u16(0).u16(0x21).u32(crc)
          .u32(cenSize).u32(cenSize).u16(name.length).u16(centralExtra.size()).u16(0).u16(0).u16(0).u32(0)
          .u32(zip64 ? 0xffffffffL : localOffset).bytes(name).bytes(centralExtra.toByteArray());
    }
    long cdOffset = out.size();
    long cdSize = central.size();
    out.bytes(central.toByteArray());
    int n = entries.size();
    if (zip64) {
      long recordOffset = out.size();
      out.u32(0x06064b50).u64(44).u16(0x031e).u16(45).u32(0).u32(0).u64(n).u64(n).u64(cdSize).u64(cdOffset);
      out.u32(0x07064b50).u32(0).u64(recordOffset).u32(1);
    }
    byte[] c = comment.getBytes(StandardCharsets.UTF_8);
    out.u32(0x06054b50).u16(0).u16(0).u16(zip64 ? 0xffff : n).u16(zip64 ? 0xffff : n)
        .u32(zip64 ? 0xffffffffL : cdSize).u32(zip64 ? 0xffffffffL : cdOffset).u16(c.length).bytes(c);
    return out.toByteArray();
  }

  /** Little-endian writer. */
  private static final class Out extends ByteArrayOutputStream {
    Out u8(int v) {
      write(v);
      return this;
    }

    Out u16(int v) {
      return u8(v & 0xff).u8((v >>> 8) & 0xff);
    }

    Out u32(long v) {
      return u16((int) (v & 0xffff)).u16((int) ((v >>> 16) & 0xffff));
    }

    Out u64(long v) {
      return u32(v & 0xffffffffL).u32(v >>> 32);
    }

    Out bytes(byte[] b) {
      writeBytes(b);
      return this;
    }
  }
}
